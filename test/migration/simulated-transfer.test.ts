// The simulated backend's memory transfer, behaviour only (never timing):
// zero pages travel as markers and land as zero pages, pages striped over
// several channels (multifd) reassemble exactly, compressed pages round-trip,
// and faults are still caught with all of it on. Real unix sockets, real
// worker threads; nothing is mocked.
import { createHash } from "node:crypto";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { PhaseState } from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_options_pb.js";
import { MemoryTransport, migrate, sessionNumber } from "ttrpc-es/migration";
import { BlockDigests } from "../../src/migration/simulated/block-digests.js";
import { DIGEST_BLOCK_BYTES, imageDigest } from "../../src/migration/simulated/image-digest.js";
import { createEndpointPair } from "../../src/migration/simulated/index.js";
import { MemoryImage } from "../../src/migration/simulated/memory-image.js";
import { PageWorkers } from "../../src/migration/simulated/page-workers.js";
import { FrameReader } from "../../src/migration/simulated/frame-io.js";
import { preCopyParams } from "../../src/migration/simulated/pre-copy-params.js";
import { runSource } from "../../src/migration/simulated/pre-copy-source.js";
import { SimulatedVm } from "../../src/migration/simulated/simulated-vm.js";
import type { HcsMigrationOptions } from "../../src/migration/stated-state.js";
import type { TransferEvent } from "../../src/migration/simulated/transfer-events.js";
import {
  AbortReason,
  decodeAbort,
  encodeAbort,
  decodePassEnd,
  decodeVerify,
  encodeEmpty,
  encodePassAck,
  encodeResult,
  Frame,
  MessageType,
} from "../../src/migration/simulated/wire-protocol.js";
import { tempDir, unixSocketPair } from "../common.js";
import { MiB, phases, type SimulatedShim, simulatedShim, transferSocket } from "./simulated-shim.js";

interface PartialInit {
  readonly checksumVerification?: boolean;
  readonly compressionSettings?: { readonly throttleWorkerCount: number };
}

/** Migrates src → dst; returns the result and whether both images were byte-identical at the destination's end. */
async function migrateChecked(src: SimulatedShim, dst: SimulatedShim, init: PartialInit = {}, extra = {}) {
  const sourceVm = src.backend.vm!;
  let identical: boolean | undefined;
  dst.backend.observe((e) => {
    if (e.type === "done") identical = dst.backend.vm!.memory.equals(sourceVm.memory);
  });
  const result = await migrate({
    source: src.address,
    destination: dst.address,
    transferAddress: transferSocket().path,
    initOptions: { memoryTransport: MemoryTransport.TCP, ...init },
    ...extra,
  });
  return { result, identical };
}

describe("simulated transfer", () => {
  it("sends zero pages as markers: few bytes on the wire, and a page zeroed by the guest is zeroed on the destination", async () => {
    const src = await simulatedShim("src", {
      // No other guest writes: one of them could land on the page below after it was zeroed.
      sandbox: { sandboxId: "sb", memoryBytes: 16 * MiB, dirtyPagesPerSecond: 0, zeroFraction: 0.75 },
    });
    const dst = await simulatedShim("dst");
    const memory = src.backend.vm!.memory;
    // A page holds data in pass 1; the guest then zeroes it: a later pass sends it as a marker.
    const page = Array.from({ length: memory.pageCount }, (_, i) => i).find((i) => !memory.isZero(i))!;
    src.backend.observe((e) => {
      if (e.type === "pass-end" && e.pass === 1) {
        memory.page(page).fill(0);
        memory.markDirty(page);
      }
    });
    const { result, identical } = await migrateChecked(src, dst);
    expect(result.error).toBeUndefined();
    expect(identical).toBe(true);
    expect(dst.backend.vm!.memory.isZero(page)).toBe(true);
    const stats = src.backend.lastStats!;
    expect(stats.zeroPages).toBeGreaterThan(memory.pageCount / 2);
    expect(stats.wireBytes).toBeLessThan(stats.pageBytes / 2);
    expect(dst.backend.lastStats!.zeroPages).toBe(stats.zeroPages);
    expect(dst.backend.lastStats!.digest).toBe(stats.digest);
    // The transfer ends at the blackout's end, before the verification that durationMs also holds.
    for (const s of [stats, dst.backend.lastStats!]) {
      expect(s.transferMs).toBeGreaterThan(0);
      expect(s.transferMs).toBeLessThanOrEqual(s.durationMs);
    }
  });

  it.each([false, true])(
    "stripes pages over 4 channels (multifd) and reassembles them exactly, with checksums, while the guest writes (digest ahead: %s)",
    async (digestAhead) => {
      const src = await simulatedShim("src", {
        sandbox: { sandboxId: "sb", memoryBytes: 16 * MiB, dirtyPagesPerSecond: 20_000 },
        channels: 4,
        digestAhead,
      });
      const dst = await simulatedShim("dst", { digestAhead });
      const { result, identical } = await migrateChecked(src, dst, { checksumVerification: true });
      expect(result.error).toBeUndefined();
      expect(identical).toBe(true);
      expect(src.backend.lastStats!.channels).toBe(4);
      expect(dst.backend.lastStats!.channels).toBe(4);
      expect(dst.backend.lastStats!.digest).toBe(src.backend.lastStats!.digest);
      expect(phases(result.notifications, "destination")).toContain("DONE");
    },
  );

  it("a destination that dials learns the channel count from the source's acknowledgement", async () => {
    const src = await simulatedShim("src", {
      sandbox: { sandboxId: "sb", memoryBytes: 8 * MiB, dirtyPagesPerSecond: 1000 },
      channels: 3,
    });
    const dst = await simulatedShim("dst");
    const sessionId = "0b7a4f3e-2c1d-4e5f-9a8b-7c6d5e4f3a2b";
    const pair = createEndpointPair({
      transport: "unix",
      address: join(tempDir(), "memory.sock"),
      sessionNumber: sessionNumber(sessionId),
      listener: "source",
    });
    const { result, identical } = await migrateChecked(src, dst, {}, { sessionId, protocolInfo: pair });
    expect(result.error).toBeUndefined();
    expect(identical).toBe(true);
    expect(dst.backend.lastStats!.channels).toBe(3);
  });

  it("compression_settings: pages are compressed on worker threads and decompress to the same image", async () => {
    const src = await simulatedShim("src", {
      // Past the probe: 32 MiB of data pages uncompressed, then 32 MiB compressed.
      sandbox: { sandboxId: "sb", memoryBytes: 96 * MiB, dirtyPagesPerSecond: 5000, zeroFraction: 0.25 },
      channels: 2,
    });
    const dst = await simulatedShim("dst");
    const { result, identical } = await migrateChecked(src, dst, {
      checksumVerification: true,
      compressionSettings: { throttleWorkerCount: 2 },
    });
    expect(result.error).toBeUndefined();
    expect(identical).toBe(true);
    const stats = src.backend.lastStats!;
    // The probe's compressed half always goes compressed; what follows depends on the link.
    expect(stats.compressedPages).toBeGreaterThan(0);
    expect(dst.backend.lastStats!.compressedPages).toBe(stats.compressedPages);
    expect(dst.backend.lastStats!.digest).toBe(stats.digest);
  });

  it("a page corrupted on the wire is still caught with compression and several channels", async () => {
    const src = await simulatedShim("src", {
      sandbox: { sandboxId: "sb", memoryBytes: 8 * MiB, dirtyPagesPerSecond: 0 },
      channels: 2,
      faults: { corruptPageOnWire: 9 },
    });
    const dst = await simulatedShim("dst");
    const failures: string[] = [];
    dst.backend.observe((e) => {
      if (e.type === "failed") failures.push(e.message);
    });
    const { result } = await migrateChecked(src, dst, {
      checksumVerification: true,
      compressionSettings: { throttleWorkerCount: 1 },
    });
    expect(result.ok).toBe(false);
    expect(failures).toEqual(["checksum mismatch on page 9 in pass 1"]);
    expect(phases(result.notifications, "destination")).toContain("FAILED/DESTINATION_FAILED");
    expect(result.recovered).toBe(true);
    expect(src.backend.vm?.status).toBe("running");
  });

  it("a connection of a multi-channel transfer that drops fails both sides; the source resumes", async () => {
    const src = await simulatedShim("src", {
      sandbox: { sandboxId: "sb", memoryBytes: 16 * MiB, dirtyPagesPerSecond: 1000 },
      channels: 3,
      faults: { dropConnectionAfterBytes: 4 * MiB },
    });
    const dst = await simulatedShim("dst");
    const { result } = await migrateChecked(src, dst);
    expect(phases(result.notifications, "source")).toContain("FAILED/SOURCE_FAILED");
    expect(phases(result.notifications, "destination")).toContain("FAILED/DESTINATION_FAILED");
    expect(phases(result.notifications, "source")).toContain("RECOVERY_DONE");
    expect(src.backend.vm?.status).toBe("running");
    expect(dst.backend.vm).toBeUndefined();
  });
});

describe("memory image", () => {
  it("knows never-written pages are zero, and zeroes only pages it wrote", () => {
    const m = new MemoryImage({ sizeBytes: 64 * 4096 });
    expect(m.knownZero(0, 64)).toBe(true);
    m.writePage(3, Buffer.alloc(4096, 7));
    expect(m.isZero(3)).toBe(false);
    expect(m.knownZero(0, 64)).toBe(false);
    m.zeroPages(0, 64);
    expect(m.isZero(3)).toBe(true);
    expect(m.page(3).every((b) => b === 0)).toBe(true);
    expect(m.knownZero(0, 64)).toBe(true);
    expect(() => m.zeroPages(60, 5)).toThrow(RangeError);
  });

  it("leaves the asked fraction of a patterned image zero", () => {
    const m = new MemoryImage({ sizeBytes: 4096 * 4096, fill: "pattern", zeroFraction: 0.75 });
    let zero = 0;
    for (let i = 0; i < m.pageCount; i++) if (m.isZero(i)) zero++;
    expect(zero / m.pageCount).toBeGreaterThan(0.6);
    expect(zero / m.pageCount).toBeLessThan(0.9);
  });

  it("digests the same on worker threads as on this thread, and a flipped byte changes it", async () => {
    const m = new MemoryImage({ sizeBytes: 40 * MiB, fill: "pattern", zeroFraction: 0.5 });
    const workers = await PageWorkers.start(m, 2);
    try {
      const here = imageDigest(m);
      expect(await new BlockDigests(m, () => Promise.resolve(workers)).digest()).toBe(here);
      m.page(7000)[100]! ^= 1;
      expect(await new BlockDigests(m, () => Promise.resolve(workers)).digest()).not.toBe(here);
    } finally {
      await workers.close();
    }
  });

  it("a known-zero block digests as zero bytes", () => {
    const m = new MemoryImage({ sizeBytes: 32 * MiB });
    const block = createHash("sha256").update(Buffer.alloc(DIGEST_BLOCK_BYTES)).digest();
    const want = createHash("sha256");
    for (let i = 0; i < (32 * MiB) / DIGEST_BLOCK_BYTES; i++) want.update(block);
    expect(imageDigest(m)).toBe(want.digest("hex"));
  });
});

describe("received frames", () => {
  it("read their payload across the socket's chunks without joining them", () => {
    const parts = [Buffer.from([0, 0, 0, 2, 9]), Buffer.from([8, 7]), Buffer.from([6, 5, 4])];
    const f = new Frame(MessageType.Pages, parts, 10);
    expect(f.head(4).readUInt32BE(0)).toBe(2);
    const out = Buffer.alloc(4);
    f.copyTo(out, 4);
    expect([...out]).toEqual([9, 8, 7, 6]);
    expect([...f.payload]).toEqual([0, 0, 0, 2, 9, 8, 7, 6, 5, 4]);
  });
});

/**
 * The source side against a destination the test scripts: it answers Setup,
 * pass ends, the blackout's end and Verify as told, and returns the Abort the
 * source sent, if any, once the connection closes.
 */
async function scriptedDestination(answer: {
  passAck: (pass: number) => number;
  result: (digest: string) => { ok: boolean; digest: string; message: string };
  /** What Setup is answered with; default Ready. */
  setup?: Buffer;
  /** Runs before a pass is acknowledged. */
  beforeAck?: (vm: SimulatedVm) => void;
  options?: HcsMigrationOptions;
}) {
  const vm = new SimulatedVm({ sandboxId: "sb", memoryBytes: 64 * 512, pageSize: 512, dirtyPagesPerSecond: 0 });
  const [mine, theirs] = await unixSocketPair();
  const reader = new FrameReader(mine, { maxPayload: 1 << 20 });
  const events: TransferEvent[] = [];
  const result = runSource({
    vm,
    links: [{ socket: theirs, reader: new FrameReader(theirs, { maxPayload: 1 << 20 }) }],
    params: preCopyParams(answer.options),
    report: { phase: () => {}, blackoutExited: () => {} },
    signal: new AbortController().signal,
    observe: (e) => events.push(e),
    digestAhead: false,
  });
  const aborted = (async () => {
    for (;;) {
      const f = await reader.next().catch(() => undefined);
      if (f === undefined) return undefined;
      if (f.type === MessageType.Setup) mine.write(answer.setup ?? encodeEmpty(MessageType.Ready));
      if (f.type === MessageType.PassEnd) {
        const end = decodePassEnd(f.payload);
        answer.beforeAck?.(vm);
        if (!end.last) mine.write(encodePassAck(answer.passAck(end.pass)));
      }
      if (f.type === MessageType.BlackoutEnd) mine.write(encodeEmpty(MessageType.OfflineAck));
      if (f.type === MessageType.Verify) mine.write(encodeResult(answer.result(decodeVerify(f.payload).digest)));
      if (f.type === MessageType.Abort) return decodeAbort(f.payload);
    }
  })();
  return { vm, result: await result, aborted: await aborted, events };
}

describe("the source side", () => {
  it("succeeds when the destination's image digest is its own", async () => {
    const run = await scriptedDestination({
      passAck: (p) => p,
      result: (digest) => ({ ok: true, digest, message: "" }),
    });
    expect(run.result).toEqual({ ok: true });
    expect(run.aborted).toBeUndefined();
    expect(run.events.find((e) => e.type === "done")).toMatchObject({ stats: { digest: run.vm.memory.digest() } });
  });

  it("fails, and aborts, on an acknowledgement of another pass", async () => {
    const message = "memory stream: PassAck for another pass";
    const run = await scriptedDestination({
      passAck: (p) => p + 1,
      result: (digest) => ({ ok: true, digest, message: "" }),
    });
    expect(run.result).toMatchObject({ ok: false, state: PhaseState.SOURCE_FAILED, message });
    expect(run.aborted).toEqual({ reason: AbortReason.Error, message });
  });

  it("fails verification on another digest, saying both when the destination gives no reason", async () => {
    const other = "ab".repeat(32);
    const run = await scriptedDestination({
      passAck: (p) => p,
      result: () => ({ ok: true, digest: other, message: "" }),
    });
    const mine = run.vm.memory.digest();
    expect(run.result).toMatchObject({
      ok: false,
      state: PhaseState.DESTINATION_FAILED,
      message: `verification failed: destination image digest ${other} differs from the source's ${mine}`,
    });
  });

  it("fails verification with the destination's reason when it gives one", async () => {
    const run = await scriptedDestination({
      passAck: (p) => p,
      result: (digest) => ({ ok: false, digest, message: "image digest mismatch: …" }),
    });
    expect(run.result).toMatchObject({
      ok: false,
      state: PhaseState.DESTINATION_FAILED,
      message: "verification failed: image digest mismatch: …",
    });
  });

  it.each([
    [AbortReason.ChecksumMismatch, PhaseState.DESTINATION_FAILED],
    [AbortReason.Cancelled, PhaseState.CANCELLED],
  ])("takes the destination's Abort (reason %i) as its failure, and sends none back", async (reason, state) => {
    const run = await scriptedDestination({
      passAck: (p) => p,
      result: (digest) => ({ ok: true, digest, message: "" }),
      setup: encodeAbort({ reason, message: "layout" }),
    });
    expect(run.result).toMatchObject({ ok: false, state, message: "destination aborted the transfer: layout" });
    expect(run.aborted).toBeUndefined();
  });

  it("cancels when the projected blackout is over the threshold the options set", async () => {
    const run = await scriptedDestination({
      passAck: (p) => p,
      result: (digest) => ({ ok: true, digest, message: "" }),
      // Pages dirtied while the pass was in flight: the blackout has them to send.
      beforeAck: (vm) => {
        for (let i = 0; i < 8; i++) vm.memory.markDirty(i);
      },
      options: {
        CancelIfBlackoutThresholdExceeds: true,
        MemoryTransferThrottleParams: {
          MaximumNumberOfBrownoutTransferPasses: 1,
          BlackoutTimeThresholdForCancellingMigration: 1e-9,
        },
      },
    });
    const message = /^projected blackout \d+\.\d ms exceeds blackout_time_threshold_for_cancelling_migration 1e-9 ms$/;
    expect(run.result).toMatchObject({
      ok: false,
      state: PhaseState.CANCELLED,
      message: expect.stringMatching(message),
    });
    expect(run.aborted).toEqual({ reason: AbortReason.Cancelled, message: expect.stringMatching(message) });
  });
});
