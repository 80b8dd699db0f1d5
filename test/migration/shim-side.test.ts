// One side of a migration as the orchestrator sees it (ShimSide), against a
// reference shim on a real unix socket with the testing backend: the step
// events its calls report, when a side counts as unreachable, and how its
// Notifications stream decides the side's outcome and the run's failure. The
// run around it is a recording SideHost (ShimSide takes its host as a
// parameter; the real one is the orchestrator's whole run).
import { describe, expect, it, vi } from "vitest";
import { Code, TtrpcError } from "ttrpc-es";
import type { MigrationEvent } from "ttrpc-es/migration";
import { ShimSide, type NotificationEvent, type SideHost } from "../../src/migration/shim-side.js";
import { Phase, PhaseState, SESSION, SUCCESSFUL_PHASES, type Shim, exportSource, ready, startShim } from "./shim.js";

interface RecordingHost extends SideHost {
  readonly events: MigrationEvent[];
  readonly fails: string[];
  readonly notified: SideHost["notified"] & { readonly seen: NotificationEvent[] };
}

/** A run that records what its side tells it; its clock starts at 100 ms and moves 7 ms a reading. */
function recordingHost(): RecordingHost {
  let now = 93;
  const seen: NotificationEvent[] = [];
  const notified = Object.assign((_side: ShimSide, event: NotificationEvent) => void seen.push(event), { seen });
  const events: MigrationEvent[] = [];
  const fails: string[] = [];
  return {
    events,
    fails,
    notified,
    at: () => (now += 7),
    emit: (e) => void events.push(e),
    fail: (why) => void fails.push(why),
  };
}

function names(seen: readonly NotificationEvent[]): string[] {
  return seen.map((e) => `${Phase[e.phase]}/${PhaseState[e.state]}`);
}

/** A side following the shim's Notifications, counted by the shim before this returns. */
async function following(shim: Shim, host: SideHost, outcome?: ShimSide["outcome"]): Promise<ShimSide> {
  const side = new ShimSide("source", host);
  await side.connect(shim.client, 1000);
  if (outcome !== undefined) side.outcome = outcome;
  const before = shim.service.session.subscribers;
  side.follow(SESSION);
  await vi.waitFor(() => expect(shim.service.session.subscribers).toBeGreaterThan(before), { timeout: 10_000 });
  return side;
}

/** A source shim up to SocketReady and a side following it, for a recording run. */
async function readySource(
  backendOptions?: Parameters<typeof startShim>[0],
  outcome?: ShimSide["outcome"],
): Promise<{ shim: Shim; host: RecordingHost; side: ShimSide }> {
  const shim = await startShim(backendOptions);
  await ready(shim, "source");
  const host = recordingHost();
  const side = await following(shim, host, outcome);
  return { shim, host, side };
}

describe("ShimSide.call", () => {
  it("reports a step with its detail, when it started and how long it took", async () => {
    const host = recordingHost();
    const side = new ShimSide("destination", host);
    expect(await side.call("FinalizeSandbox", async () => 42, "STOP")).toBe(42);
    expect(host.events).toEqual([
      { type: "step", side: "destination", step: "FinalizeSandbox", detail: "STOP", atMs: 100, ms: 7 },
    ]);
  });

  it("reports a failed step with the error's message, and rethrows the error", async () => {
    const host = recordingHost();
    const side = new ShimSide("source", host);
    const nope = new Error("nope");
    await expect(side.call("Cancel", () => Promise.reject(nope))).rejects.toBe(nope);
    expect(host.events).toEqual([{ type: "step", side: "source", step: "Cancel", atMs: 100, ms: 7, error: "nope" }]);
    expect(side.outcome).toBe("not-started");
  });

  it("a call that fails UNAVAILABLE or CANCELLED on a closed connection makes the side unreachable", async () => {
    const shim = await startShim();
    const host = recordingHost();
    const side = new ShimSide("source", host);
    await side.connect(shim.address, 1000);
    // Open, an UNAVAILABLE answer is the shim's own: the side is still there.
    const reject = (code: Code) => () => Promise.reject(new TtrpcError("x", code));
    await expect(side.call("Cancel", reject(Code.Unavailable))).rejects.toMatchObject({ code: Code.Unavailable });
    expect(side.outcome).toBe("not-started");
    // The orchestrator stopped following it, so the lost connection alone fails nothing.
    side.streamAbort.abort();
    side.conn!.close();
    await side.conn!.done;
    const outcomes: string[] = [];
    for (const e of [new TtrpcError("x", Code.Internal), new Error("plain"), new TtrpcError("x", Code.Canceled)]) {
      side.outcome = "not-started";
      await expect(side.call("Cancel", () => Promise.reject(e))).rejects.toBe(e);
      outcomes.push(side.outcome);
    }
    side.outcome = "not-started";
    // A real call on the closed connection.
    const err = await side.call("Cancel", (c) => c.cancel({ sessionId: SESSION })).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: Code.Unavailable });
    outcomes.push(side.outcome);
    expect(outcomes).toEqual(["not-started", "not-started", "unreachable", "unreachable"]);
    expect(host.fails).toEqual([]);
  });
});

describe("ShimSide.connect", () => {
  it("a lost connection fails the run and makes a side still in progress unreachable", async () => {
    const shim = await startShim();
    const host = recordingHost();
    const side = new ShimSide("source", host);
    await side.connect(shim.address, 1000);
    let terminal = false;
    void side.terminal.then(() => (terminal = true));
    side.conn!.close();
    const why = await side.conn!.done;
    await side.terminal;
    expect(terminal).toBe(true);
    expect(side.outcome).toBe("unreachable");
    expect(host.fails).toEqual([`source shim connection lost: ${why.message}`]);
  });

  it.each(["failed", "cancelled"] as const)("a lost connection keeps a side that %s as it ended", async (outcome) => {
    const shim = await startShim();
    const host = recordingHost();
    const side = new ShimSide("destination", host);
    await side.connect(shim.address, 1000);
    side.outcome = outcome;
    side.conn!.close();
    await side.terminal;
    expect(side.outcome).toBe(outcome);
    expect(host.fails).toHaveLength(1);
  });

  it("a lost connection after DONE, or once no longer followed, fails nothing", async () => {
    const shim = await startShim();
    for (const how of ["done", "aborted"] as const) {
      const host = recordingHost();
      const side = new ShimSide("source", host);
      await side.connect(shim.address, 1000);
      if (how === "done") side.outcome = "done";
      else side.streamAbort.abort();
      side.conn!.close();
      // The side's own reaction to the lost connection was registered first
      // (in connect), so it has run, and decided, when this await returns.
      await side.conn!.done;
      // Terminal is still pending: a settled promise would win this race, its
      // reaction queued before the second one's.
      expect(await Promise.race([side.terminal, "pending"])).toBe("pending");
      expect(host.fails).toEqual([]);
      expect(side.outcome).toBe(how === "done" ? "done" : "not-started");
    }
  });
});

describe("ShimSide.follow", () => {
  it("a transfer that ends DONE: the side is done, each notification reaches the run, nothing fails", async () => {
    const { shim, host, side } = await readySource({ blackoutMs: 12 });
    await shim.client.transferSandbox({ sessionId: SESSION });
    await side.terminal;
    expect(side.outcome).toBe("done");
    expect(names(host.notified.seen)).toEqual(SUCCESSFUL_PHASES);
    expect(host.notified.seen.map((e) => e.messageId)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(host.notified.seen[4]).toMatchObject({ type: "notification", side: "source", blackoutMs: 12 });
    expect(host.notified.seen.filter((e) => "blackoutMs" in e)).toHaveLength(1);
    // Stopping to follow a side that is done fails nothing and keeps it done.
    side.streamAbort.abort();
    await side.stream;
    expect(side.outcome).toBe("done");
    expect(host.fails).toEqual([]);
  });

  it.each([
    ["fail" as const, "failed", "source reported PHASE_FAILED / SOURCE_FAILED"],
    ["cancel" as const, "cancelled", "source reported PHASE_FAILED / CANCELLED"],
  ])(
    "PHASE_FAILED from a %s: the side ends %s, the run fails once, a later stream error adds nothing",
    async (how, outcome, why) => {
      const { shim, host, side } = await readySource({ transfer: how === "fail" ? "fail" : "hang" });
      await shim.client.transferSandbox({ sessionId: SESSION });
      if (how === "cancel") await shim.client.cancel({ sessionId: SESSION });
      await side.terminal;
      expect(side.outcome).toBe(outcome);
      expect(host.fails).toEqual([why]);
      shim.conn.close();
      await side.stream;
      expect(side.outcome).toBe(outcome);
      expect(host.fails).toEqual([why]);
    },
  );

  it("the stream breaking before an outcome makes the side unreachable and fails the run", async () => {
    const { shim, host, side } = await readySource();
    shim.conn.close();
    await side.terminal;
    await side.stream;
    expect(side.outcome).toBe("unreachable");
    expect(host.fails).toHaveLength(1);
    expect(host.fails[0]).toMatch(/^source shim: notifications ended: \S/);
  });

  it("the stream ending cleanly before an outcome makes the side unreachable without failing the run", async () => {
    const shim = await startShim();
    await shim.client.importSandbox({
      sessionId: SESSION,
      sandboxId: "sb",
      config: await (async () => {
        const other = await startShim();
        return exportSource(other);
      })(),
    });
    const host = recordingHost();
    const side = await following(shim, host);
    await shim.client.cancel({ sessionId: SESSION });
    await shim.client.cleanup({ sessionId: SESSION });
    await side.terminal;
    await side.stream;
    expect(side.outcome).toBe("unreachable");
    expect(host.fails).toEqual([]);
  });

  it("stopping to follow a side still in progress fails nothing; the side can no longer say (unreachable)", async () => {
    const { host, side } = await readySource();
    side.streamAbort.abort();
    await side.stream;
    expect(side.outcome).toBe("unreachable");
    expect(host.fails).toEqual([]);
  });

  it("a side counted unreachable still takes the outcome its stream reports", async () => {
    const { shim, side } = await readySource(undefined, "unreachable");
    await shim.client.transferSandbox({ sessionId: SESSION });
    await side.terminal;
    expect(side.outcome).toBe("done");
    side.streamAbort.abort();
    await side.stream;
  });

  it("a side that already ended keeps its outcome when a later terminal phase comes", async () => {
    const { shim, host, side } = await readySource(undefined, "failed");
    await shim.client.transferSandbox({ sessionId: SESSION });
    await vi.waitFor(() => expect(names(host.notified.seen)).toContain("DONE/SUCCESS"), { timeout: 10_000 });
    expect(side.outcome).toBe("failed");
    expect(host.fails).toEqual([]);
    side.streamAbort.abort();
    await side.stream;
  });
});
