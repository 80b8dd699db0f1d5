// The orchestrator driving two reference shims with the simulated backend
// over real unix sockets: a normal migration whose destination memory equals
// the source's, and the faults it survives (every failure ends with the source
// running again, RECOVERY_DONE, and both shims back to Idle). No sleeps: faults
// fire from transfer events.
import { describe, expect, it } from "vitest";
import { MemoryTransport, type MigrationEvent, migrate } from "ttrpc-es/migration";
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
    const result = await migrate({
      source: src.address,
      destination: dst.address,
      transferAddress: transferSocket().path,
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
    const result = await migrate({
      source: src.address,
      destination: dst.address,
      transferAddress: sock.path,
      initOptions: INIT,
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
    const result = await migrate({
      source: src.address,
      destination: dst.address,
      transferAddress: sock.path,
      initOptions: INIT,
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
    const result = await migrate({
      source: src.address,
      destination: dst.address,
      transferAddress: transferSocket().path,
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
    const result = await migrate({
      source: src.address,
      destination: dst.address,
      transferAddress: transferSocket().path,
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
      const result = await migrate({
        source: src.address,
        destination: dst.address,
        transferAddress: transferSocket().path,
        initOptions: INIT,
      });
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
    const result = await migrate({
      source: src.address,
      destination: dst.address,
      transferAddress: transferSocket().path,
      initOptions: INIT,
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
    const result = await migrate({
      source: src.address,
      destination: dst.address,
      transferAddress: sock.path,
      initOptions: INIT,
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
