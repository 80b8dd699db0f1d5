// One TransferSandbox's background run (TransferRun) on a session of its own:
// how its socket wait ends (settled, timed out, aborted), what it does with a
// session that changed meanwhile, the blackout it measures, and that the
// backend's reports stop counting once the transfer settled. The server
// around it is a recording TransferHost (TransferRun takes its host as a
// parameter; the real one is the whole controller), and the backend is the
// testing backend or a scripted transfer.
import { afterEach, describe, expect, it, vi } from "vitest";
import { Code } from "ttrpc-es";
import { Phase, PhaseState, type NotificationsResponse } from "ttrpc-es/migration";
import { createTestingBackend, type TestingBackend } from "ttrpc-es/migration/testing";
import type { TransferReporter, TransferRequest } from "../../src/migration/backend.js";
import { MigrationSession } from "../../src/migration/migration-session.js";
import type { TestingEndpoint } from "../../src/migration/testing/testing-backend.js";
import { TransferRun, type TransferHost } from "../../src/migration/transfer-run.js";
import { drain, fakeTimeouts } from "../common.js";

afterEach(() => {
  vi.useRealTimers();
});

interface Rig {
  host: TransferHost<TestingEndpoint> & { owned: boolean; clock: number; failures: unknown[] };
  s: MigrationSession<TestingEndpoint>;
  backend: TestingBackend;
  stream: AsyncIterable<NotificationsResponse>;
}

function rig(backend = createTestingBackend(), origin: "Source" | "Destination" = "Destination"): Rig {
  const s = new MigrationSession<TestingEndpoint>("s-1", origin, "SocketWaiting", { now: () => 0 });
  const host = {
    backend,
    owned: true,
    clock: 1000,
    failures: [] as unknown[],
    now: () => host.clock,
    owns: () => host.owned,
    failTransfer: (session: MigrationSession<TestingEndpoint>, error: unknown) => {
      host.failures.push(error);
      session.state = "Failed";
    },
  };
  // Subscribed first: every report reaches this stream, read once the session ends.
  const stream = s.subscribe(new AbortController().signal)!;
  return { host, s, backend, stream };
}

/** The socket arrived: SocketReady with an endpoint, and the wait woken. */
function socketReady(s: MigrationSession<TestingEndpoint>): void {
  s.endpoint = { value: { name: "ep" } };
  s.state = "SocketReady";
  s.socketSettled.resolve();
}

async function notifications(r: Rig): Promise<NotificationsResponse[]> {
  r.s.end();
  return (await drain(r.stream)).messages;
}

function phases(items: readonly NotificationsResponse[]): string[] {
  return items.map((n) => `${Phase[n.notification!.phase]}/${PhaseState[n.notification!.state]}`);
}

function transfers(b: TestingBackend): number {
  return b.calls.filter((c) => c.operation === "transfer").length;
}

/** Runs the transfer, its socket arriving once the run waits for it. */
async function runWithSocket(r: Rig): Promise<void> {
  const run = new TransferRun(r.host, r.s, 60_000).run();
  socketReady(r.s);
  await run;
}

/** Runs the transfer and wakes its socket wait with the session in `state` and no socket. */
async function runWokenIn(r: Rig, state: MigrationSession<TestingEndpoint>["state"]): Promise<void> {
  const run = new TransferRun(r.host, r.s, 60_000).run();
  r.s.state = state;
  r.s.socketSettled.resolve();
  await run;
}

/** The run failed the session once, FAILED_PRECONDITION with `rawMessage`, and transferred nothing. */
function expectFailedBeforeTransfer(r: Rig, rawMessage: string): void {
  expect(r.host.failures).toEqual([expect.objectContaining({ code: Code.FailedPrecondition, rawMessage })]);
  expect(transfers(r.backend)).toBe(0);
}

describe("TransferRun: the socket wait", () => {
  it("transfers once the socket is ready, with the session's options, and ends TransferCompleted", async () => {
    let options: unknown;
    const testing = createTestingBackend();
    const r = rig({
      ...testing,
      transfer: (req) => {
        options = req.options;
        return testing.transfer(req);
      },
    } as TestingBackend);
    await runWithSocket(r);
    expect(r.s.state).toBe("TransferCompleted");
    expect(options).toEqual({ Origin: "Destination" });
    expect(phases(await notifications(r)).at(-1)).toBe("DONE/SUCCESS");
  });

  it("a wait that times out fails the session with FAILED_PRECONDITION naming the wait", async () => {
    fakeTimeouts();
    const r = rig();
    const run = new TransferRun(r.host, r.s, 250).run();
    await vi.advanceTimersByTimeAsync(250);
    await run;
    expectFailedBeforeTransfer(r, "timed out waiting for socket ready after 250 ms");
  });

  it("a wait longer than a timer can hold is capped, not wrapped around to at once", async () => {
    fakeTimeouts();
    const r = rig();
    const run = new TransferRun(r.host, r.s, 2 ** 32).run();
    await vi.advanceTimersByTimeAsync(1000);
    socketReady(r.s);
    await run;
    expect(r.host.failures).toEqual([]);
    expect(r.s.state).toBe("TransferCompleted");
  });

  it("a session aborted before the run starts transfers nothing, though its socket is ready", async () => {
    const r = rig();
    socketReady(r.s);
    r.s.abort.abort();
    await new TransferRun(r.host, r.s, 60_000).run();
    expect(transfers(r.backend)).toBe(0);
    expect(r.s.state).toBe("SocketReady");
  });

  it("an abort during the wait ends it quietly, even when the session is Failed", async () => {
    const r = rig();
    const run = new TransferRun(r.host, r.s, 60_000).run();
    r.s.state = "Failed";
    r.s.abort.abort();
    await run;
    expect(r.host.failures).toEqual([]);
  });

  it("a session no longer owned transfers nothing when its socket arrives", async () => {
    const r = rig();
    const run = new TransferRun(r.host, r.s, 60_000).run();
    r.host.owned = false;
    socketReady(r.s);
    await run;
    expect(transfers(r.backend)).toBe(0);
    expect(r.s.state).toBe("SocketReady");
  });

  it("a socket that failed fails the transfer with FAILED_PRECONDITION", async () => {
    const r = rig();
    await runWokenIn(r, "Failed");
    expectFailedBeforeTransfer(r, "migration session failed before transfer could start");
  });

  it("a wait woken while the session is neither ready nor failed ends without a transfer or a failure", async () => {
    const r = rig();
    await runWokenIn(r, "Cancelled");
    expect(r.host.failures).toEqual([]);
    expect(transfers(r.backend)).toBe(0);
    expect(r.s.state).toBe("Cancelled");
  });
});

/** A backend whose transfer runs `script` with the reporter, and keeps the reporter. */
function scripted(script: (report: TransferReporter) => Promise<void> | void) {
  const kept: { report?: TransferReporter } = {};
  const backend = {
    ...createTestingBackend(),
    transfer: async (req: TransferRequest<TestingEndpoint>) => {
      kept.report = req.report;
      await script(req.report);
      return { ok: true } as const;
    },
  } as TestingBackend;
  return { backend, kept };
}

describe("TransferRun: the reports", () => {
  it("measures the blackout from BLACKOUT_STARTED to its exit on the host's clock", async () => {
    let r!: Rig;
    const { backend } = scripted((report) => {
      r.host.clock = 1000;
      report.phase(Phase.SETUP_DONE);
      r.host.clock = 1100;
      report.phase(Phase.BLACKOUT_STARTED);
      r.host.clock = 1200;
      report.phase(Phase.OFFLINE_DONE);
      r.host.clock = 1350;
      report.blackoutExited();
    });
    r = rig(backend);
    await runWithSocket(r);
    const items = await notifications(r);
    expect(phases(items)).toEqual([
      "SETUP_DONE/SUCCESS",
      "BLACKOUT_STARTED/SUCCESS",
      "OFFLINE_DONE/SUCCESS",
      "BLACKOUT_EXITED/SUCCESS",
      "DONE/SUCCESS",
    ]);
    const exited = items[3]!.notification!.phaseDetails;
    expect(exited.case).toBe("blackoutExited");
    expect(exited.case === "blackoutExited" && exited.value.blackoutDurationMilliseconds).toBe(250n);
    expect(exited.case === "blackoutExited" && exited.value.blackoutStopTimestamp?.seconds).toBe(1n);
  });

  it("a blackout exit with its stop time but no duration takes the duration from BLACKOUT_STARTED", async () => {
    let r!: Rig;
    const { backend } = scripted((report) => {
      r.host.clock = 5000;
      report.phase(Phase.BLACKOUT_STARTED);
      r.host.clock = 9000;
      report.blackoutExited({ stoppedAtMs: 5400 });
    });
    r = rig(backend);
    await runWithSocket(r);
    const exited = (await notifications(r))[1]!.notification!.phaseDetails;
    expect(exited.case === "blackoutExited" && exited.value.blackoutDurationMilliseconds).toBe(400n);
    expect(exited.case === "blackoutExited" && exited.value.blackoutStopTimestamp?.seconds).toBe(5n);
  });

  it("reports that come after the transfer settled are dropped", async () => {
    const { backend, kept } = scripted(() => {});
    const r = rig(backend);
    await runWithSocket(r);
    kept.report!.phase(Phase.TRANSFER_IN_PROGRESS);
    kept.report!.blackoutExited({ durationMs: 1, stoppedAtMs: 1 });
    expect(phases(await notifications(r))).toEqual(["DONE/SUCCESS"]);
  });

  it("a transfer that ends after its session was cleaned up or cancelled changes nothing", async () => {
    for (const how of ["not owned", "cancelling"] as const) {
      let r!: Rig;
      const { backend } = scripted(() => {
        if (how === "not owned") r.host.owned = false;
        else r.s.state = "Cancelling";
      });
      r = rig(backend);
      await runWithSocket(r);
      expect(r.s.state).toBe(how === "not owned" ? "Transferring" : "Cancelling");
      expect(phases(await notifications(r))).toEqual([]);
    }
  });
});
