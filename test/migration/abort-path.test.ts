// The orchestrator's abort path (runAbortPath) and its bounded wait (within):
// which side gets which wind-down step in which order, what is skipped, how a
// failed step is recorded while the next is still attempted, and the wait for
// the source's RECOVERY_DONE before Cleanup. Each side's client is a small
// recording stand-in (ShimSide takes its client as a parameter): the order of
// the calls and their failures are then exact, with no socket timing between
// them. The whole path against real shims runs in orchestrator.test.ts.
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Client } from "ttrpc-es";
import { FinalizeAction, type MigrationClient, type MigrationEvent } from "ttrpc-es/migration";
import { type AbortPathHost, runAbortPath, within } from "../../src/migration/abort-path.js";
import { ShimSide, type SideHost } from "../../src/migration/shim-side.js";
import { fakeTimeouts } from "../common.js";

afterEach(() => {
  vi.useRealTimers();
});

/**
 * Resolves once the path is in its bounded wait for the source's recovery
 * (on the fake clock, that wait's timer is then set: the only timer the path
 * makes), or once the path ended without one. setImmediate is not faked: it
 * lets the stand-ins' answers run.
 */
async function inRecoveryWait(path: Promise<void>): Promise<void> {
  let ended = false;
  void path.then(() => (ended = true));
  while (vi.getTimerCount() === 0 && !ended) await new Promise<void>((r) => setImmediate(r));
}

type Step = "cancel" | "finalizeSandbox" | "cleanup";

interface Rig {
  host: AbortPathHost;
  source: ShimSide;
  destination: ShimSide;
  /** Every call, in order: "source cancel", "destination finalizeSandbox STOP", … */
  log: string[];
  events: MigrationEvent[];
  /** Calls that fail, with the error they throw. */
  failures: Map<string, unknown>;
  recovered: () => void;
}

function rig(): Rig {
  const log: string[] = [];
  const events: MigrationEvent[] = [];
  const failures = new Map<string, unknown>();
  const sideHost: SideHost = {
    at: () => 0,
    emit: (e) => void events.push(e),
    fail: () => {},
    notified: () => {},
  };
  const client = (side: ShimSide) => {
    const answer = async (step: Step, detail?: string) => {
      const name = `${side.side} ${step}${detail === undefined ? "" : ` ${detail}`}`;
      log.push(step === "cleanup" && side.streamAbort.signal.aborted ? `${name} (stream stopped)` : name);
      if (failures.has(name)) throw failures.get(name);
      return {};
    };
    return {
      cancel: () => answer("cancel"),
      finalizeSandbox: (r: { action: FinalizeAction }) => answer("finalizeSandbox", FinalizeAction[r.action]),
      cleanup: () => answer("cleanup"),
    } as unknown as MigrationClient;
  };
  const source = new ShimSide("source", sideHost);
  const destination = new ShimSide("destination", sideHost);
  source.client = client(source);
  destination.client = client(destination);
  source.started = true;
  destination.started = true;
  let recovered!: () => void;
  const recoverySeen = new Promise<void>((r) => (recovered = r));
  const host: AbortPathHost = {
    sessionId: "s-1",
    source,
    destination,
    abortErrors: [],
    recoverySeen,
    opts: () => ({ timeoutMs: 1000 }),
  };
  return { host, source, destination, log, events, failures, recovered };
}

/** A rig changed by `setup`, after its abort path ran to its end. */
async function afterAbortPath(setup: (r: Rig) => void = () => {}): Promise<Rig> {
  const r = rig();
  setup(r);
  await runAbortPath(r.host);
  return r;
}

/** The calls of a whole abort path, both sides started and reachable, in order. */
const BOTH_SIDES = [
  "source cancel",
  "destination cancel",
  "source finalizeSandbox RESUME",
  "destination finalizeSandbox STOP",
  "source cleanup (stream stopped)",
  "destination cleanup (stream stopped)",
];
/** The calls of a path that winds down only one side. */
const SOURCE_ONLY = ["source cancel", "source finalizeSandbox RESUME", "source cleanup (stream stopped)"];
const DESTINATION_ONLY = [
  "destination cancel",
  "destination finalizeSandbox STOP",
  "destination cleanup (stream stopped)",
];

/** A connection as the abort path reads it: only whether it is closed. */
function connection(closed: boolean): Client {
  return { closed } as Client;
}

describe("runAbortPath", () => {
  it("Cancel on both sides, then source RESUME, destination STOP, then Cleanup after each stream stopped", async () => {
    const r = await afterAbortPath();
    expect(r.log).toEqual(BOTH_SIDES);
    expect(r.events.map((e) => (e.type === "step" ? `${e.side} ${e.step} ${e.detail ?? "-"}` : e.type))).toEqual([
      "source Cancel -",
      "destination Cancel -",
      "source FinalizeSandbox RESUME",
      "destination FinalizeSandbox STOP",
      "source Cleanup -",
      "destination Cleanup -",
    ]);
    expect(r.host.abortErrors).toEqual([]);
  });

  it("winds down only the sides that started", async () => {
    const r = await afterAbortPath((r) => (r.destination.started = false));
    expect(r.log).toEqual(SOURCE_ONLY);
    const d = await afterAbortPath((d) => (d.source.started = false));
    expect(d.log).toEqual(DESTINATION_ONLY);
  });

  it("a side that already reported FAILED gets no Cancel, but still its FinalizeSandbox and Cleanup", async () => {
    const r = await afterAbortPath((r) => (r.source.outcome = "failed"));
    expect(r.log).toEqual(BOTH_SIDES.filter((call) => call !== "source cancel"));
  });

  it("records each failed step with side, step and detail, and still attempts the next", async () => {
    const r = await afterAbortPath((r) => {
      r.failures.set("source cancel", new Error("no cancel"));
      r.failures.set("source finalizeSandbox RESUME", new Error("no resume"));
      r.failures.set("destination finalizeSandbox STOP", "a string");
      r.failures.set("destination cleanup", new Error("no cleanup"));
    });
    expect(r.host.abortErrors).toEqual([
      "source Cancel: no cancel",
      "source FinalizeSandbox RESUME: no resume",
      "destination FinalizeSandbox STOP: a string",
      "destination Cleanup: no cleanup",
    ]);
    expect(r.log).toHaveLength(6);
  });

  it("skips a side that is unreachable with its connection closed, and only that one", async () => {
    const r = await afterAbortPath((r) => {
      r.destination.outcome = "unreachable";
      r.destination.conn = connection(true);
    });
    expect(r.log).toEqual(SOURCE_ONLY);
    // Unreachable by its stream but with no closed connection of its own, or
    // a closed connection without the side being unreachable: attempted.
    for (const [outcome, conn] of [
      ["unreachable", undefined],
      ["unreachable", connection(false)],
      ["not-started", connection(true)],
    ] as const) {
      const o = await afterAbortPath((o) => {
        o.source.started = false;
        o.destination.outcome = outcome;
        o.destination.conn = conn;
      });
      expect(o.log).toEqual(DESTINATION_ONLY);
    }
  });

  it("holds the source's Cleanup until its RECOVERY_DONE arrived", async () => {
    fakeTimeouts();
    const r = rig();
    r.source.stream = new Promise<void>(() => {});
    const path = runAbortPath(r.host);
    // The path entered its wait: no Cleanup was sent before it.
    await inRecoveryWait(path);
    expect(r.log).toEqual(BOTH_SIDES.slice(0, 4));
    r.log.push("RECOVERY_DONE");
    r.recovered();
    await path;
    expect(r.log.slice(4)).toEqual(["RECOVERY_DONE", ...BOTH_SIDES.slice(4)]);
  });

  it("holds the Cleanup until the source's stream ended, when no RECOVERY_DONE comes", async () => {
    fakeTimeouts();
    const r = rig();
    let endStream!: () => void;
    r.source.stream = new Promise<void>((resolve) => (endStream = resolve));
    const path = runAbortPath(r.host);
    await inRecoveryWait(path);
    expect(r.log).toHaveLength(4);
    r.log.push("stream ended");
    endStream();
    await path;
    expect(r.log).toHaveLength(7);
    // Both Cleanups came after the stream ended.
    expect(r.log.slice(4)).toEqual(["stream ended", ...BOTH_SIDES.slice(4)]);
  });

  it("does not wait for RECOVERY_DONE from a source whose connection closed, or that never started", async () => {
    fakeTimeouts();
    for (const how of ["closed", "not started"] as const) {
      const r = rig();
      r.source.stream = new Promise<void>(() => {});
      if (how === "closed") r.source.conn = connection(true);
      else r.source.started = false;
      // The clock never moves here: a path that waited for the source's
      // recovery would never end, and the test would time out.
      await runAbortPath(r.host);
      expect(r.log.at(-1)).toBe("destination cleanup (stream stopped)");
      expect(vi.getTimerCount()).toBe(0);
    }
  });
});

describe("within", () => {
  it("ends when the promise settles, and leaves no timer behind", async () => {
    fakeTimeouts();
    await within(Promise.resolve(), 1000);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("ends after the bound when the promise never settles, not before", async () => {
    fakeTimeouts();
    let finished = false;
    void within(new Promise(() => {}), 500).then(() => (finished = true));
    await vi.advanceTimersByTimeAsync(499);
    expect(finished).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(finished).toBe(true);
  });
});
