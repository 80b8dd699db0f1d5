// The orchestrator driving two reference shims with the simulated backend
// over real unix sockets: a normal migration whose destination memory equals
// the source's, and the faults it survives (every failure ends with the source
// running again, RECOVERY_DONE, and both shims back to Idle). No sleeps: faults
// fire from transfer events.
import { tmpdir } from "node:os";
import { basename, dirname } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { Code, TtrpcError } from "ttrpc-es";
import {
  MemoryTransport,
  type MigrateOptions,
  type MigrationClient,
  type MigrationEvent,
  migrate,
} from "ttrpc-es/migration";
import { parseEndpointDescriptor } from "ttrpc-es/migration/simulated";
import { fakeTimeouts } from "../common.js";
import { type Shim, INIT as TESTING_INIT, Phase, SESSION, startShim, testingEndpoint } from "./shim.js";
import { MiB, phases, type SimulatedShim, simulatedShim, transferSocket } from "./simulated-shim.js";

const INIT = { memoryTransport: MemoryTransport.TCP };

async function expectWoundDown(
  src: SimulatedShim,
  dst: SimulatedShim | undefined,
  result: Awaited<ReturnType<typeof migrate>>,
) {
  expect(result.ok).toBe(false);
  expect(result.recovered).toBe(true);
  expect(phases(result.notifications, "source")).toContain("RECOVERY_DONE");
  expect(src.backend.vm?.status).toBe("running");
  expect(src.backend.vm?.workload.throttlePercent).toBe(100);
  expect(src.service.session.state).toBe("Idle");
  if (dst !== undefined) {
    expect(dst.service.session.state).toBe("Idle");
    expect(dst.backend.vm).toBeUndefined();
  }
}

/**
 * migrate() between two simulated shims' addresses with the TCP init options,
 * over a fresh memory socket unless `options` names one; `options` adds to or
 * replaces these.
 */
function migrateSimulated(src: SimulatedShim, dst: SimulatedShim, options: Partial<MigrateOptions> = {}) {
  return migrate({
    source: src.address,
    destination: dst.address,
    transferAddress: options.transferAddress ?? transferSocket().path,
    initOptions: INIT,
    ...options,
  });
}

describe("orchestrator with the simulated backend", () => {
  it("migrates a running sandbox; the destination's memory equals the source's", async () => {
    const src = await simulatedShim("src", {
      sandbox: { sandboxId: "sb1", memoryBytes: 8 * MiB, dirtyPagesPerSecond: 20000 },
    });
    const dst = await simulatedShim("dst");
    const sourceVm = src.backend.vm!;
    // At the destination's verified end (before it resumes), both images are byte-identical.
    let identical: boolean | undefined;
    dst.backend.observe((e) => {
      if (e.type === "done") identical = dst.backend.vm!.memory.equals(sourceVm.memory);
    });
    const events: MigrationEvent[] = [];
    const result = await migrateSimulated(src, dst, {
      initOptions: { memoryTransport: MemoryTransport.TCP, checksumVerification: true },
      onEvent: (e) => events.push(e),
    });
    expect(result.error).toBeUndefined();
    expect(result.ok).toBe(true);
    expect(phases(events, "source")).toEqual([
      "SETUP_DONE",
      "TRANSFER_IN_PROGRESS",
      "BLACKOUT_STARTED",
      "OFFLINE_DONE",
      "BLACKOUT_EXITED",
      "DONE",
    ]);
    expect(phases(events, "destination")).toEqual([
      "SETUP_DONE",
      "TRANSFER_IN_PROGRESS",
      "BLACKOUT_STARTED",
      "OFFLINE_DONE",
      "BLACKOUT_EXITED",
      "DONE",
    ]);
    // The blackout the source measured, as BLACKOUT_EXITED carried it (whole ms).
    expect(result.blackoutMs).toBe(Math.round(src.backend.lastStats!.blackoutMs));
    expect(result.notifications.find((n) => n.side === "source" && n.blackoutMs !== undefined)?.blackoutMs).toBe(
      result.blackoutMs,
    );
    // The source was stopped, the destination runs the same memory.
    expect(src.backend.vm).toBeUndefined();
    const destVm = dst.backend.vm!;
    expect(destVm.status).toBe("running");
    expect(identical).toBe(true);
    expect(sourceVm.memory.digest()).toBe(src.backend.lastStats!.digest);
    expect(dst.backend.lastStats!.digest).toBe(src.backend.lastStats!.digest);
    expect(src.service.session.state).toBe("Idle");
    expect(dst.service.session.state).toBe("Idle");
  });
  it("the destination shim dies mid-transfer: the source resumes and reports RECOVERY_DONE", async () => {
    const src = await simulatedShim("src", {
      sandbox: { sandboxId: "sb", memoryBytes: 16 * MiB, dirtyPagesPerSecond: 5000 },
    });
    const dst = await simulatedShim("dst");
    let killed = false;
    dst.backend.observe((e) => {
      if (!killed && e.type === "progress" && e.pageBytes >= 2 * MiB) {
        killed = true;
        dst.backend.crash();
        void dst.server.close();
      }
    });
    const sock = transferSocket();
    const result = await migrateSimulated(src, dst, {
      transferAddress: sock.path,
    });
    expect(killed).toBe(true);
    expect(result.destination).toBe("unreachable");
    expect(result.error).toMatch(/destination/);
    expect(phases(result.notifications, "source")).toContain("RECOVERY_DONE");
    await expectWoundDown(src, undefined, result);
    expect(sock.leftOver()).toBe(false);
  });

  it("the memory socket drops: both sides fail, the source resumes, the destination is discarded", async () => {
    const src = await simulatedShim("src", {
      sandbox: { sandboxId: "sb", memoryBytes: 16 * MiB, dirtyPagesPerSecond: 1000 },
      faults: { dropConnectionAfterBytes: 4 * MiB },
    });
    const dst = await simulatedShim("dst");
    const sock = transferSocket();
    const result = await migrateSimulated(src, dst, {
      transferAddress: sock.path,
    });
    expect(phases(result.notifications, "source")).toContain("FAILED/SOURCE_FAILED");
    expect(phases(result.notifications, "destination")).toContain("FAILED/DESTINATION_FAILED");
    expect(src.backend.lastStats?.pageBytes).toBeLessThan(16 * MiB);
    await expectWoundDown(src, dst, result);
    expect(sock.leftOver()).toBe(false);
  });

  it("the projected blackout exceeds the threshold: cancelled before the guest pauses, the source resumes", async () => {
    // The guest dirties far more than a pass can move, so the dirty set never shrinks.
    const src = await simulatedShim("src", {
      sandbox: { sandboxId: "sb", memoryBytes: 16 * MiB, dirtyPagesPerSecond: 50_000_000 },
    });
    const dst = await simulatedShim("dst");
    const result = await migrateSimulated(src, dst, {
      initOptions: {
        ...INIT,
        cancelIfBlackoutThresholdExceeds: true,
        // A 1 ms blackout target is never met by a 16 MiB pass, so both passes run.
        memoryTransferThrottleParams: {
          skipThrottling: true,
          maximumNumberOfBrownoutTransferPasses: 2,
          targetBlackoutTransferTime: 1,
          blackoutTimeThresholdForCancellingMigration: 1,
        },
      },
    });
    const source = phases(result.notifications, "source");
    expect(source).toContain("FAILED/CANCELLED");
    expect(source).not.toContain("BLACKOUT_STARTED");
    expect(phases(result.notifications, "destination")).toContain("FAILED/CANCELLED");
    expect(src.backend.lastStats?.projectedBlackoutMs).toBeGreaterThan(1);
    expect(src.backend.lastStats?.brownoutPasses).toBe(2);
    await expectWoundDown(src, dst, result);
  });

  it("a page corrupted on the wire fails the checksum verification: failed, never a silent success", async () => {
    const src = await simulatedShim("src", {
      sandbox: { sandboxId: "sb", memoryBytes: 8 * MiB, dirtyPagesPerSecond: 0 },
      faults: { corruptPageOnWire: 7 },
    });
    const dst = await simulatedShim("dst");
    const failures: string[] = [];
    dst.backend.observe((e) => {
      if (e.type === "failed") failures.push(e.message);
    });
    const result = await migrateSimulated(src, dst, {
      initOptions: { ...INIT, checksumVerification: true },
    });
    expect(failures).toEqual(["checksum mismatch on page 7 in pass 1"]);
    expect(phases(result.notifications, "destination")).toContain("FAILED/DESTINATION_FAILED");
    // The source fails on the destination's abort, or is cancelled by the orchestrator first.
    expect(phases(result.notifications, "source").filter((p) => p.startsWith("FAILED/"))[0]).toMatch(
      /^FAILED\/(DESTINATION_FAILED|CANCELLED)$/,
    );
    await expectWoundDown(src, dst, result);
  });

  it.each([false, true])(
    "without per-page checksums the whole-image digest still catches a corrupted page (digest ahead: %s)",
    async (digestAhead) => {
      const src = await simulatedShim("src", {
        sandbox: { sandboxId: "sb", memoryBytes: 8 * MiB, dirtyPagesPerSecond: 0 },
        faults: { corruptPageOnWire: 3 },
        digestAhead,
      });
      const dst = await simulatedShim("dst", { digestAhead });
      const result = await migrateSimulated(src, dst);
      expect(phases(result.notifications, "source").filter((p) => p.startsWith("FAILED/"))[0]).toMatch(
        /^FAILED\/(DESTINATION_FAILED|CANCELLED)$/,
      );
      expect(phases(result.notifications, "destination")).toContain("BLACKOUT_EXITED");
      expect(phases(result.notifications, "destination")).toContain("FAILED/DESTINATION_FAILED");
      await expectWoundDown(src, dst, result);
    },
  );
});

describe("orchestrator cancelled through its signal", () => {
  it("a signal aborted before migrate(): no session opens, the source runs on untouched", async () => {
    const src = await simulatedShim("src", {
      sandbox: { sandboxId: "sb", memoryBytes: 4 * MiB, dirtyPagesPerSecond: 0 },
    });
    const dst = await simulatedShim("dst");
    const digest = src.backend.vm!.memory.digest();
    const events: MigrationEvent[] = [];
    const result = await migrateSimulated(src, dst, {
      signal: AbortSignal.abort(new Error("operator said no")),
      onEvent: (e) => events.push(e),
    });
    expect(result).toMatchObject({
      ok: false,
      error: "aborted: operator said no",
      source: "not-started",
      destination: "not-started",
    });
    // Not one RPC: the abort path has nothing to wind down.
    expect(events.filter((e) => e.type === "step")).toEqual([]);
    expect(events.map((e) => e.type)).toEqual(["abort"]);
    expect(src.backend.vm?.status).toBe("running");
    expect(src.backend.vm?.memory.digest()).toBe(digest);
    expect(src.service.session.state).toBe("Idle");
    expect(dst.backend.vm).toBeUndefined();
  });

  it("aborted during TransferSandbox: the transfer stops, the source resumes with its memory unchanged", async () => {
    const src = await simulatedShim("src", {
      sandbox: { sandboxId: "sb", memoryBytes: 16 * MiB, dirtyPagesPerSecond: 0 },
    });
    const dst = await simulatedShim("dst");
    const digest = src.backend.vm!.memory.digest();
    const cancel = new AbortController();
    let abortedAtPages: number | undefined;
    // The first page batch the source sends: TransferSandbox is running.
    src.backend.observe((e) => {
      if (abortedAtPages === undefined && e.type === "progress" && e.side === "source") {
        abortedAtPages = e.pageBytes;
        cancel.abort(new Error("operator cancelled mid-transfer"));
      }
    });
    const sock = transferSocket();
    const result = await migrateSimulated(src, dst, {
      transferAddress: sock.path,
      signal: cancel.signal,
    });
    expect(abortedAtPages).toBeLessThan(16 * MiB);
    expect(result.error).toBe("aborted: operator cancelled mid-transfer");
    const source = phases(result.notifications, "source");
    expect(source).not.toContain("DONE");
    expect(source).not.toContain("BLACKOUT_STARTED");
    expect(source).toContain("FAILED/CANCELLED");
    expect(src.backend.lastStats?.pageBytes).toBeLessThan(16 * MiB);
    expect(src.backend.vm?.memory.digest()).toBe(digest);
    await expectWoundDown(src, dst, result);
    expect(sock.leftOver()).toBe(false);
  });
});

// The same orchestrator on reference shims with the testing backend (no VM,
// no memory socket): each rule of the run on a small, exact scenario. Where a
// test must see or change what one RPC carries, the side's client is the real
// client with that one method wrapped (migrate takes the clients as options).
const TESTING = { source: testingEndpoint("src"), destination: testingEndpoint("dst") };

function steps(events: readonly MigrationEvent[]): string[] {
  return events.flatMap((e) =>
    e.type === "step"
      ? [`${e.side} ${e.step}${e.detail === undefined ? "" : ` ${e.detail}`}${e.error ? " !" : ""}`]
      : [],
  );
}

/** A source and a destination shim with the testing backend, each with its own options. */
async function shimPair(
  source: Parameters<typeof startShim>[0] = {},
  destination: Parameters<typeof startShim>[0] = {},
): Promise<[Shim, Shim]> {
  return [await startShim(source), await startShim(destination)];
}

/**
 * migrate() between the two shims' clients, in session SESSION with the
 * testing init options and endpoints; `options` adds to or replaces these
 * (`protocolInfo: "default"` leaves the orchestrator's own endpoints).
 */
function migrateTesting(
  src: Shim,
  dst: Shim,
  options: Omit<Partial<MigrateOptions>, "protocolInfo"> & {
    protocolInfo?: MigrateOptions["protocolInfo"] | "default";
  } = {},
) {
  const { protocolInfo = TESTING, ...rest } = options;
  return migrate({
    source: src.client,
    destination: dst.client,
    sessionId: SESSION,
    initOptions: TESTING_INIT,
    ...(protocolInfo === "default" ? {} : { protocolInfo }),
    ...rest,
  });
}

describe("orchestrator with the testing backend", () => {
  it("a migration that succeeds: destination RESUME before source STOP, no abort errors, no recovery", async () => {
    const [src, dst] = await shimPair({ blackoutMs: 12 }, { blackoutMs: 7, transfer: "gated" });
    const events: MigrationEvent[] = [];
    const before = performance.now();
    const result = await migrateTesting(src, dst, {
      source: src.address,
      destination: dst.address,
      onEvent: (e) => {
        events.push(e);
        // The destination's blackout comes last: only the source's counts.
        if (e.type === "notification" && e.side === "source" && e.phase === Phase.DONE) dst.backend.openGate();
      },
    });
    const elapsed = performance.now() - before;
    expect(result).toMatchObject({ ok: true, source: "done", destination: "done", blackoutMs: 12, abortErrors: [] });
    expect(result.recovered).toBeUndefined();
    expect(result.error).toBeUndefined();
    expect(result.durationMs).toBeGreaterThan(0);
    expect(result.durationMs).toBeLessThanOrEqual(elapsed);
    expect(steps(events)).toEqual([
      "source PrepareAndExportSandbox",
      "destination ImportSandbox",
      "destination PrepareSandbox",
      "source CreateDuplicateSocket",
      "destination CreateDuplicateSocket",
      "source TransferSandbox",
      "destination TransferSandbox",
      "destination FinalizeSandbox RESUME",
      "source FinalizeSandbox STOP",
      "source Cleanup",
      "destination Cleanup",
    ]);
    expect(src.service.session.state).toBe("Idle");
    expect(dst.service.session.state).toBe("Idle");
  });

  it("sends the destination the source's init options when it has none of its own, and the timeout as a Duration", async () => {
    const [src, dst] = await shimPair();
    const seen: { init?: unknown; timeouts: unknown[] } = { timeouts: [] };
    const record = (client: MigrationClient): MigrationClient => ({
      ...client,
      prepareSandbox: (req, o) => {
        seen.init = req.initOptions;
        return client.prepareSandbox(req, o);
      },
      transferSandbox: (req, o) => {
        seen.timeouts.push(req.timeout);
        return client.transferSandbox(req, o);
      },
    });
    const result = await migrateTesting(src, dst, {
      source: record(src.client),
      destination: record(dst.client),
      timeoutMs: 2500,
    });
    expect(result.ok).toBe(true);
    expect(seen.init).toEqual(TESTING_INIT);
    expect(seen.timeouts).toEqual([
      { seconds: 2n, nanos: 500_000_000 },
      { seconds: 2n, nanos: 500_000_000 },
    ]);
  });

  it("a failed step is the run's error, reported as an abort event, and the source is wound down", async () => {
    const [src, dst] = await shimPair({}, { failures: { prepareDestination: new Error("no room") } });
    const events: MigrationEvent[] = [];
    const result = await migrateTesting(src, dst, { onEvent: (e) => events.push(e) });
    const why = "[INTERNAL] create destination vm: no room";
    expect(result).toMatchObject({ ok: false, error: why, source: "not-started", destination: "not-started" });
    expect(events.filter((e) => e.type === "abort").map((e) => e.type === "abort" && e.reason)).toEqual([why]);
    expect(steps(events).slice(3)).toEqual([
      "source Cancel",
      "destination Cancel",
      "source FinalizeSandbox RESUME",
      "destination FinalizeSandbox STOP",
      "source Cleanup",
      "destination Cleanup",
    ]);
    expect(src.service.session.state).toBe("Idle");
  });

  it("the source's RECOVERY_DONE decides `recovered`, the destination's notifications do not", async () => {
    const [src, dst] = await shimPair({ transfer: "hang", recovered: false }, { transfer: "fail" });
    const result = await migrateTesting(src, dst);
    expect(result).toMatchObject({
      ok: false,
      error: "destination reported PHASE_FAILED / DESTINATION_FAILED",
      source: "cancelled",
      destination: "failed",
      recovered: false,
    });
    expect(phases(result.notifications, "source").at(-1)).toBe("RECOVERY_DONE/RECOVERY_FAILED");
  });

  it("a source that exports no config fails the run with that reason", async () => {
    const [src, dst] = await shimPair();
    const result = await migrateTesting(src, dst, {
      source: { ...src.client, prepareAndExportSandbox: async () => ({}) as never },
    });
    expect(result).toMatchObject({ ok: false, error: "source returned no config", destination: "not-started" });
  });

  it("a config it cannot read, without a sandboxId, fails the run naming the option to pass", async () => {
    const [src, dst] = await shimPair();
    const result = await migrateTesting(src, dst, {
      source: {
        ...src.client,
        prepareAndExportSandbox: async (req, o) => {
          await src.client.prepareAndExportSandbox(req, o);
          return { config: { typeUrl: "example.com/other", value: new Uint8Array([1]) } } as never;
        },
      },
    });
    expect(result.ok).toBe(false);
    expect(result.error).toMatch(
      /^the source's config is not a StatedState the orchestrator can read; pass sandboxId: \S/,
    );
    expect(src.service.session.state).toBe("Idle");
  });

  it.each(["source", "destination"] as const)(
    "a %s whose stream ends without an outcome fails the run naming both outcomes",
    async (gone) => {
      const [src, dst] = await shimPair(
        { transfer: gone === "source" ? "hang" : "succeed" },
        { transfer: gone === "destination" ? "hang" : "succeed" },
      );
      const stays = gone === "source" ? dst : src;
      const leaves = gone === "source" ? src : dst;
      const result = await migrateTesting(src, dst, {
        onEvent: (e) => {
          // Its transfer started: the leaving shim ends its session, its stream ends cleanly.
          if (e.type === "notification" && e.side === gone && e.phase === Phase.TRANSFER_IN_PROGRESS)
            void leaves.service.close();
        },
      });
      expect(stays.service.session.state).toBe("Idle");
      expect(result.ok).toBe(false);
      expect(result.error).toBe(
        gone === "source"
          ? "transfer ended with source unreachable, destination done"
          : "transfer ended with source done, destination unreachable",
      );
    },
  );

  it("a signal aborted as the last DONE arrives still fails the run", async () => {
    const [src, dst] = await shimPair();
    const cancel = new AbortController();
    let done = 0;
    const result = await migrateTesting(src, dst, {
      signal: cancel.signal,
      onEvent: (e) => {
        if (e.type === "notification" && e.phase === Phase.DONE && ++done === 2) cancel.abort(new Error("too late"));
      },
    });
    expect(result).toMatchObject({ ok: false, error: "aborted: too late", source: "done", destination: "done" });
    expect(src.service.session.state).toBe("Idle");
  });

  it("stops listening to the signal when the run is over", async () => {
    const [src, dst] = await shimPair();
    const cancel = new AbortController();
    const events: MigrationEvent[] = [];
    const result = await migrateTesting(src, dst, { signal: cancel.signal, onEvent: (e) => events.push(e) });
    expect(result.ok).toBe(true);
    const count = events.length;
    cancel.abort(new Error("after the fact"));
    // An abort listener runs inside abort(): anything it would emit is there now.
    expect(events).toHaveLength(count);
  });

  it("no outcome within timeoutMs fails the run and winds both sides down", async () => {
    fakeTimeouts();
    try {
      const [src, dst] = await shimPair({ transfer: "hang" }, { transfer: "hang" });
      let transferring!: () => void;
      const sent = new Promise<void>((r) => (transferring = r));
      const run = migrateTesting(src, dst, {
        timeoutMs: 5000,
        onEvent: (e) => {
          if (e.type === "step" && e.side === "destination" && e.step === "TransferSandbox") transferring();
        },
      });
      await sent;
      // The wait's timer is set in the turns that follow the step.
      await new Promise<void>((r) => setImmediate(r));
      await vi.advanceTimersByTimeAsync(5000);
      const result = await run;
      expect(result).toMatchObject({ ok: false, error: "no outcome within 5000 ms", recovered: true });
      expect(src.service.session.state).toBe("Idle");
      expect(dst.service.session.state).toBe("Idle");
    } finally {
      vi.useRealTimers();
    }
  });

  it("a Cleanup that fails after a successful migration is recorded, and the run still succeeds", async () => {
    const [src, dst] = await shimPair();
    const result = await migrateTesting(src, dst, {
      destination: { ...dst.client, cleanup: () => Promise.reject(new TtrpcError("gone", Code.Unavailable)) },
    });
    expect(result.ok).toBe(true);
    expect(result.abortErrors).toEqual(["destination Cleanup: [UNAVAILABLE] gone"]);
  });

  it("the default memory endpoints: a fresh unix socket in the temp folder, or the transferAddress given", async () => {
    const descriptors: Uint8Array[] = [];
    const recordSocket = async (given: string | undefined) => {
      const [src, dst] = await shimPair();
      descriptors.length = 0;
      await migrateTesting(src, dst, {
        source: {
          ...src.client,
          createDuplicateSocket: async (req) => {
            descriptors.push(req.protocolInfo ?? new Uint8Array());
            throw new TtrpcError("stop here", Code.Aborted);
          },
        },
        protocolInfo: "default",
        ...(given === undefined ? {} : { transferAddress: given }),
      });
      return parseEndpointDescriptor(descriptors[0]!);
    };
    const fresh = await recordSocket(undefined);
    expect(fresh).toMatchObject({ transport: "unix", role: "connect" });
    expect(dirname(fresh.address)).toBe(tmpdir());
    expect(basename(fresh.address)).toMatch(/^ttrpc-es-mig-[0-9a-f]{8}\.sock$/);
    const given = await recordSocket("/run/given.sock");
    expect(given.address).toBe("/run/given.sock");
  });

  it("a tcp transfer without transferAddress is INVALID_ARGUMENT before any socket is offered", async () => {
    const [src, dst] = await shimPair();
    const events: MigrationEvent[] = [];
    const result = await migrateTesting(src, dst, {
      protocolInfo: "default",
      transport: "tcp",
      onEvent: (e) => events.push(e),
    });
    expect(result.error).toBe("[INVALID_ARGUMENT] a tcp transfer needs transferAddress HOST:PORT");
    expect(steps(events).filter((s) => s.includes("CreateDuplicateSocket"))).toEqual([]);
  });
});
