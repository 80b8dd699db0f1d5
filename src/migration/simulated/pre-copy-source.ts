/**
 * The source side of the pre-copy live migration: brownout passes while the
 * guest runs (throttled as the options say), then the blackout (guest
 * paused, the last dirty pages and the device state), then verification of
 * the whole image against the destination's.
 *
 * @module
 */
import { crc32 } from "node:zlib";
import { setImmediate as yieldToLoop } from "node:timers/promises";
import { Phase, PhaseState } from "../../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_options_pb.js";
import type { TransferReporter, TransferResult } from "../backend.js";
import { BlockDigests } from "./block-digests.js";
import { type PageWorkers, startWorkers } from "./page-workers.js";
import type { PreCopyParams } from "./pre-copy-params.js";
import type { SimulatedVm } from "./simulated-vm.js";
import { emptyStats, type TransferObserver, type TransferStats } from "./transfer-events.js";
import type { Link } from "./transfer-link.js";
import {
  AbortReason,
  encodeFrame,
  FRAME_HEADER,
  MessageType,
  WireError,
  write,
  writeFrameHeader,
  type Frame,
} from "./wire-protocol.js";

/** Test hooks: faults the source injects on purpose. */
export interface SourceFaults {
  /** Flip one byte of this page on the wire the first time it is sent, after its checksum is computed. */
  readonly corruptPageOnWire?: number;
  /** Destroy the memory connection once this many page bytes were sent. */
  readonly dropConnectionAfterBytes?: number;
}

/** Page bytes per Pages frame at most: big writes, few frames. */
const FRAME_BYTES = 1024 * 1024;
/** Data page bytes sent each way (uncompressed, compressed) to find whether compression pays. */
const PROBE_BYTES = 32 * 1024 * 1024;
/** Runs per Pages frame at most (scattered dirty pages make many short runs). */
const MAX_RUNS_PER_FRAME = 256;
/** Zero-page ranges per ZeroPages frame at most. */
const ZERO_RANGES_PER_FRAME = 8192;

export interface SourceTransfer {
  readonly vm: SimulatedVm;
  /** The connections, one per channel; the first also carries the control messages. */
  readonly links: readonly Link[];
  readonly params: PreCopyParams;
  readonly report: TransferReporter;
  readonly signal: AbortSignal;
  readonly observe: TransferObserver;
  readonly faults?: SourceFaults;
  /** Hash digest blocks during the passes; default {@link digestPlan}. */
  readonly digestAhead?: boolean;
}

class PeerAbort extends Error {
  constructor(
    readonly reason: AbortReason,
    message: string,
  ) {
    super(message);
  }
}

export async function runSource(t: SourceTransfer): Promise<TransferResult> {
  const { vm, links, params, report, signal, observe } = t;
  const link = links[0]!;
  const memory = vm.memory;
  const started = performance.now();
  const stats = emptyStats("source", params.checksums);
  stats.channels = links.length;
  const snapshot = (): TransferStats => ({ ...stats, durationMs: performance.now() - started });

  // Frames from the destination arrive while we send: an Abort must stop us.
  const inbox: Frame[] = [];
  let peerError: Error | undefined;
  let wake: (() => void) | undefined;
  void (async () => {
    for (;;) {
      const frame = await link.reader.next();
      if (frame.type === MessageType.Abort) {
        const p = frame.payload;
        throw new PeerAbort(p[0] as AbortReason, p.subarray(1).toString("utf8"));
      }
      inbox.push(frame);
      wake?.();
    }
  })().catch((err: Error) => {
    peerError ??= err;
    wake?.();
  });
  // A data channel that closes before its last PassEnd is a broken transfer.
  let channelsDone = false;
  for (const l of links.slice(1)) {
    l.socket.on("close", () => {
      if (channelsDone) return;
      peerError ??= new WireError("a memory-transfer channel closed");
      wake?.();
    });
  }
  let jobError: Error | undefined;
  const check = () => {
    if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new Error("cancelled");
    if (peerError !== undefined) throw peerError;
    if (jobError !== undefined) throw jobError;
  };
  const expect = async (type: MessageType): Promise<Frame> => {
    for (;;) {
      check();
      const frame = inbox.shift();
      if (frame !== undefined) {
        if (frame.type !== type)
          throw new WireError(`memory stream: expected ${MessageType[type]}, got ${MessageType[frame.type]}`);
        return frame;
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
        signal.addEventListener("abort", () => resolve(), { once: true });
      });
      wake = undefined;
    }
  };
  // One pending drain per channel: a channel that pushes back is waited for
  // only when it is its turn again, so the others keep flowing.
  const backlog: (Promise<void> | undefined)[] = links.map(() => undefined);
  const sendOn = async (channel: number, ...buffers: Buffer[]) => {
    check();
    await backlog[channel];
    check();
    for (const b of buffers) stats.wireBytes += b.length;
    const pending = write(links[channel]!.socket, ...buffers);
    // Awaited at the channel's next turn; a failure meanwhile is not unhandled.
    pending?.then(
      () => {
        if (backlog[channel] === pending) backlog[channel] = undefined;
      },
      () => {},
    );
    backlog[channel] = pending;
  };
  const send = (frame: Buffer) => sendOn(0, frame);
  const flushed = async () => {
    for (let c = 0; c < links.length; c++) await backlog[c];
  };
  const idle = () => links.every((l) => l.socket.writableLength === 0);
  let corrupted = false;
  let nextChannel = 0;
  const pageSize = memory.pageSize;
  const framePages = Math.max(1, Math.floor(FRAME_BYTES / pageSize));

  // The runs (first, count pairs) of a Pages frame: its header, and the
  // pages straight from guest memory (no copy), all in one writev.
  const sendRuns = async (runs: readonly number[], pages: number) => {
    const sumBytes = params.checksums ? 4 * pages : 0;
    const listBytes = 4 + 4 * runs.length;
    const head = Buffer.allocUnsafe(FRAME_HEADER + listBytes + sumBytes);
    writeFrameHeader(head, MessageType.Pages, listBytes + sumBytes + pages * pageSize);
    head.writeUInt32BE(runs.length / 2, FRAME_HEADER);
    const body: Buffer[] = [head];
    let sumAt = FRAME_HEADER + listBytes;
    const bad = t.faults?.corruptPageOnWire;
    for (let r = 0; r < runs.length; r += 2) {
      const first = runs[r]!;
      const count = runs[r + 1]!;
      head.writeUInt32BE(first, FRAME_HEADER + 4 + 4 * r);
      head.writeUInt32BE(count, FRAME_HEADER + 8 + 4 * r);
      for (let view of memory.views(first, count)) {
        for (let at = 0; sumBytes > 0 && at < view.length; at += pageSize, sumAt += 4)
          head.writeUInt32BE(crc32(view.subarray(at, at + pageSize)), sumAt);
        if (!corrupted && bad !== undefined && bad >= first && bad < first + count) {
          view = Buffer.from(view);
          view[(bad - first + 1) * pageSize - 1]! ^= 0xff;
          corrupted = true;
        }
        body.push(view);
      }
    }
    await sendOn(nextChannel, ...body);
    nextChannel = (nextChannel + 1) % links.length;
  };

  // Compression: frames are deflated by the workers, a few per worker in
  // flight, and sent (on the next channel) as each is done; order within a
  // pass does not matter.
  const compressors =
    params.compressionWorkers === undefined ? undefined : startWorkers(memory, params.compressionWorkers);
  const inflight = new Set<Promise<void>>();
  const sendCompressed = async (pool: PageWorkers, runs: readonly number[]) => {
    while (inflight.size >= 2 * pool.size) await Promise.race(inflight);
    check();
    const sources: [number, number, number][] = [];
    for (let r = 0; r < runs.length; r += 2) sources.push(...memory.byteRanges(runs[r]!, runs[r + 1]!));
    const job = pool
      .run({ op: "deflate", sources, pageSize, checksums: params.checksums })
      .then(async (r) => {
        const sums = Buffer.from(r.sums.buffer, r.sums.byteOffset, r.sums.byteLength);
        const data = Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength);
        const listBytes = 4 + 4 * runs.length;
        const head = Buffer.allocUnsafe(FRAME_HEADER + listBytes);
        const type = r.compressed ? MessageType.CompressedPages : MessageType.Pages;
        if (r.compressed) for (let k = 1; k < runs.length; k += 2) stats.compressedPages += runs[k]!;
        writeFrameHeader(head, type, listBytes + sums.length + data.length);
        head.writeUInt32BE(runs.length / 2, FRAME_HEADER);
        for (let k = 0; k < runs.length; k++) head.writeUInt32BE(runs[k]!, FRAME_HEADER + 4 + 4 * k);
        const channel = nextChannel;
        nextChannel = (nextChannel + 1) % links.length;
        await sendOn(channel, head, sums, data);
      })
      .catch((err: Error) => {
        jobError ??= err;
      })
      .finally(() => inflight.delete(job));
    inflight.add(job);
  };
  const settle = async () => {
    while (inflight.size > 0) await Promise.race(inflight);
    check();
  };

  // Compression is used where it pays: the first PROBE_BYTES of data pages
  // go uncompressed and then as many compressed, each timed to the link's
  // drain; the faster way sends the rest (and the blackout, which is never
  // a probe). A link slower than the workers (TCP between hosts) compresses,
  // a local socket does not.
  const compression = {
    mode: "probe-raw" as "probe-raw" | "probe-compressed" | "raw" | "compressed",
    bytes: 0,
    since: 0,
    rawRate: 0,
    async send(pool: PageWorkers, runs: readonly number[], pages: number, blackout: boolean) {
      const probing = this.mode === "probe-raw" || this.mode === "probe-compressed";
      if (probing && blackout) return sendRuns(runs, pages);
      if (this.bytes === 0) this.since = performance.now();
      if (this.mode === "raw" || this.mode === "probe-raw") await sendRuns(runs, pages);
      else await sendCompressed(pool, runs);
      if (!probing) return;
      this.bytes += pages * pageSize;
      if (this.bytes < PROBE_BYTES) return;
      await settle();
      await flushed();
      const rate = this.bytes / Math.max(performance.now() - this.since, 0.001);
      this.bytes = 0;
      if (this.mode === "probe-raw") {
        this.rawRate = rate;
        this.mode = "probe-compressed";
      } else this.mode = rate > this.rawRate ? "compressed" : "raw";
    },
  };

  const sendZeroRanges = async (ranges: number[]) => {
    if (ranges.length === 0) return;
    const frame = Buffer.allocUnsafe(FRAME_HEADER + ranges.length * 4);
    writeFrameHeader(frame, MessageType.ZeroPages, ranges.length * 4);
    for (let k = 0; k < ranges.length; k++) frame.writeUInt32BE(ranges[k]!, FRAME_HEADER + 4 * k);
    ranges.length = 0;
    await sendOn(nextChannel, frame);
    nextChannel = (nextChannel + 1) % links.length;
  };

  const sendPass = async (pass: number, blackout: boolean, pages: Uint32Array) => {
    const head = Buffer.alloc(9);
    head.writeUInt32BE(pass, 0);
    head.writeUInt32BE(pages.length, 4);
    head[8] = blackout ? 1 : 0;
    observe({
      type: "pass",
      side: "source",
      pass,
      blackout,
      pages: pages.length,
      throttlePercent: vm.workload.throttlePercent,
    });
    await send(encodeFrame(MessageType.PassBegin, head));
    const zeros: number[] = [];
    let runs: number[] = [];
    let runPagesTotal = 0;
    const pool = compressors === undefined ? undefined : await compressors;
    const flushRuns = async () => {
      if (runs.length === 0) return;
      const bad = t.faults?.corruptPageOnWire;
      const hasBad = bad !== undefined && runs.some((v, k) => k % 2 === 0 && bad >= v && bad < v + runs[k + 1]!);
      if (pool === undefined || hasBad) await sendRuns(runs, runPagesTotal);
      else await compression.send(pool, runs, runPagesTotal, blackout);
      runs = [];
      runPagesTotal = 0;
    };
    let frames = 0;
    for (let i = 0; i < pages.length; ) {
      const first = pages[i]!;
      let count = 1;
      if (memory.isZero(first)) {
        // Zero pages travel as (first, count) markers, as hypervisors send them.
        while (i + count < pages.length && pages[i + count] === first + count && memory.isZero(first + count)) count++;
        zeros.push(first, count);
        stats.zeroPages += count;
        if (zeros.length >= 2 * ZERO_RANGES_PER_FRAME) await sendZeroRanges(zeros);
      } else {
        // A run of consecutive non-zero pages; a frame holds runs up to 1 MiB of pages.
        while (
          runPagesTotal + count < framePages &&
          i + count < pages.length &&
          pages[i + count] === first + count &&
          !memory.isZero(first + count)
        )
          count++;
        runs.push(first, count);
        runPagesTotal += count;
      }
      i += count;
      stats.pages += count;
      stats.pageBytes += count * pageSize;
      if (blackout) stats.blackoutPages += count;
      if (runPagesTotal < framePages && runs.length < 2 * MAX_RUNS_PER_FRAME && i < pages.length) continue;
      await flushRuns();
      const drop = t.faults?.dropConnectionAfterBytes;
      if (drop !== undefined && stats.pageBytes >= drop) {
        for (const l of links) l.socket.destroy();
        throw new WireError(`memory-transfer connection dropped after ${stats.pageBytes} bytes (injected fault)`);
      }
      observe({
        type: "progress",
        side: "source",
        pass,
        blackout,
        passDone: i,
        passPages: pages.length,
        pageBytes: stats.pageBytes,
        imageBytes: memory.sizeBytes,
      });
      // The guest writes only while no page bytes wait in a socket (they are its memory).
      if (!blackout && idle()) vm.workload.advance();
      // Let the event loop breathe (RPCs, timers) even when the sockets never push back.
      if (++frames % 16 === 0) await yieldToLoop();
    }
    await sendZeroRanges(zeros);
    await settle();
    const end = Buffer.alloc(5);
    end.writeUInt32BE(pass, 0);
    end[4] = blackout ? 1 : 0;
    for (let c = 0; c < links.length; c++) await sendOn(c, encodeFrame(MessageType.PassEnd, end));
    // The blackout pass is not acknowledged: OfflineAck follows once it is applied (one round trip less).
    if (blackout) {
      channelsDone = true;
      return;
    }
    await flushed();
    // The destination applied every channel's pages: the next pass cannot overtake this one.
    const ack = await expect(MessageType.PassAck);
    if (ack.payload.readUInt32BE(0) !== pass) throw new WireError(`memory stream: PassAck for another pass`);
  };

  // The image digest's blocks are hashed from the start where a core is
  // free for it (see digestPlan), and again only once written since.
  let digests: BlockDigests | undefined;
  try {
    // Setup: agree on the memory layout.
    const setup = Buffer.alloc(13);
    setup.writeUInt32BE(memory.pageSize, 0);
    setup.writeUInt32BE(memory.pageCount, 4);
    setup[8] = (params.checksums ? 1 : 0) | (params.compressionWorkers === undefined ? 0 : 2);
    await send(encodeFrame(MessageType.Setup, setup));
    await expect(MessageType.Ready);
    observe({ type: "connected", side: "source" });
    report.phase(Phase.SETUP_DONE);
    report.phase(Phase.TRANSFER_IN_PROGRESS);

    digests = BlockDigests.start(memory, t.digestAhead);
    digests.touch(0, memory.pageCount);

    // Brownout.
    memory.markAllDirty();
    vm.workload.hold(true);
    let throttle = 100;
    let previousRemaining = Number.POSITIVE_INFINITY;
    let projected = 0;
    for (let pass = 1; ; pass++) {
      if (!params.skipThrottling && pass >= params.throttleFromPass && pass > 1) {
        throttle = Math.max(params.minimumThrottlePercent, Math.round(throttle * params.throttlingScale));
        vm.workload.throttle(throttle);
      }
      vm.workload.advance();
      const pages = memory.takeDirty();
      const t0 = performance.now();
      await sendPass(pass, false, pages);
      const ms = performance.now() - t0;
      stats.brownoutPasses = pass;
      vm.workload.advance();
      digests.touchStale();
      const remaining = memory.dirtyCount;
      // The blackout sends scattered pages, far slower than pass 1's whole
      // image: project from the last pass's rate, and from pass 1 never end.
      const bytesPerMs = (pages.length * memory.pageSize) / Math.max(ms, 0.001);
      projected = (remaining * memory.pageSize) / bytesPerMs;
      stats.projectedBlackoutMs = projected;
      observe({
        type: "pass-end",
        side: "source",
        pass,
        pages: pages.length,
        ms,
        remainingDirty: remaining,
        projectedBlackoutMs: projected,
      });
      // Half the target for the pages: the rest is for what else the blackout
      // holds (device state, acknowledgements, a busy machine's scheduling).
      if (projected <= params.targetBlackoutMs / 2 && (pass > 1 || remaining === 0)) break;
      if (pass >= params.maxPasses) break;
      if (pass >= params.targetPasses && remaining >= previousRemaining) break;
      previousRemaining = remaining;
    }
    stats.throttlePercent = throttle;

    if (
      params.cancelIfThresholdExceeded &&
      params.blackoutThresholdMs !== undefined &&
      projected > params.blackoutThresholdMs
    ) {
      const message =
        `projected blackout ${projected.toFixed(1)} ms exceeds ` +
        `blackout_time_threshold_for_cancelling_migration ${params.blackoutThresholdMs} ms`;
      await sendAbort(link, AbortReason.Cancelled, message);
      return fail(PhaseState.CANCELLED, message);
    }

    // Blackout: the guest is paused, nothing gets dirty any more.
    vm.pause();
    digests.pause(true);
    const blackoutStart = performance.now();
    report.phase(Phase.BLACKOUT_STARTED);
    await sendPass(stats.brownoutPasses + 1, true, memory.takeDirty());
    await send(encodeFrame(MessageType.DeviceState, Buffer.from(JSON.stringify(vm.deviceState()), "utf8")));
    await send(encodeFrame(MessageType.BlackoutEnd));
    await expect(MessageType.OfflineAck);
    report.phase(Phase.OFFLINE_DONE);
    // One reading: the blackout's end, the transfer's end and the stop time are the same instant.
    const offlineAt = performance.now();
    stats.blackoutMs = offlineAt - blackoutStart;
    stats.transferMs = offlineAt - started;
    const stoppedAtMs = performance.timeOrigin + offlineAt;
    report.blackoutExited({ durationMs: stats.blackoutMs, stoppedAtMs });

    // Verification: the destination's image must equal ours (the guest stays paused).
    stats.digest = await digests.digest();
    const verify = Buffer.alloc(48);
    Buffer.from(stats.digest, "hex").copy(verify, 0);
    verify.writeDoubleBE(stats.blackoutMs, 32);
    verify.writeDoubleBE(stoppedAtMs, 40);
    await send(encodeFrame(MessageType.Verify, verify));
    const result = (await expect(MessageType.Result)).payload;
    const theirs = result.subarray(1, 33).toString("hex");
    if (result[0] !== 1 || theirs !== stats.digest) {
      const why =
        result.subarray(33).toString("utf8") ||
        `destination image digest ${theirs} differs from the source's ${stats.digest}`;
      return fail(PhaseState.DESTINATION_FAILED, `verification failed: ${why}`);
    }
    observe({ type: "done", side: "source", stats: snapshot() });
    return { ok: true };
  } catch (thrown) {
    let err = thrown;
    if (signal.aborted) {
      await sendAbort(link, AbortReason.Cancelled, "migration cancelled on the source");
      return fail(PhaseState.CANCELLED, "cancelled", err);
    }
    // A peer's Abort may arrive just behind the write error it caused: prefer its reason.
    await yieldToLoop();
    if (peerError instanceof PeerAbort) err = peerError;
    if (err instanceof PeerAbort) {
      const state = err.reason === AbortReason.Cancelled ? PhaseState.CANCELLED : PhaseState.DESTINATION_FAILED;
      return fail(state, `destination aborted the transfer: ${err.message}`, err);
    }
    await sendAbort(link, AbortReason.Error, err instanceof Error ? err.message : String(err));
    return fail(PhaseState.SOURCE_FAILED, err instanceof Error ? err.message : String(err), err);
  } finally {
    digests?.close();
    void compressors?.then((w) => w?.close());
    vm.workload.hold(false);
    for (const l of links) l.socket.destroy();
  }

  function fail(state: PhaseState, message: string, cause?: unknown): TransferResult {
    observe({ type: "failed", side: "source", message, stats: snapshot() });
    return { ok: false, state, message, ...(cause === undefined ? {} : { cause }) };
  }
}

/** Best effort: tell the peer why we stop, then close. */
export async function sendAbort(link: Link, reason: AbortReason, message: string): Promise<void> {
  if (link.socket.destroyed) return;
  const payload = Buffer.concat([Buffer.from([reason]), Buffer.from(message, "utf8")]);
  await new Promise<void>((resolve) => {
    link.socket.end(encodeFrame(MessageType.Abort, payload), () => resolve());
    setTimeout(resolve, 200).unref();
  });
}
