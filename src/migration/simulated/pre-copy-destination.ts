/**
 * The destination side of the pre-copy live migration: it applies the
 * pages of every pass to its (not running) VM's memory, verifies each
 * page's checksum when asked, loads the device state, and at the end checks
 * that its whole image equals the source's.
 *
 * Pages may come on several channels; within a pass each page comes once,
 * so their order does not matter. A pass is acknowledged (PassAck) once
 * every channel has ended it, and the source starts the next pass only then,
 * so a page of pass n+1 never lands before the same page of pass n.
 *
 * @module
 */
import { crc32 } from "node:zlib";
import { Phase, PhaseState } from "../../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_options_pb.js";
import type { TransferReporter, TransferResult } from "../backend.js";
import { availableParallelism } from "node:os";
import { BlockDigests } from "./block-digests.js";
import { sendAbort } from "./pre-copy-source.js";
import type { DeviceState, SimulatedVm } from "./simulated-vm.js";
import { emptyStats, type TransferObserver, type TransferStats } from "./transfer-events.js";
import type { Link } from "./transfer-link.js";
import { PageMismatch, type PageWorkers, startWorkers } from "./page-workers.js";
import { AbortReason, encodeFrame, type Frame, MessageType, WireError } from "./wire-protocol.js";

export interface DestinationTransfer {
  readonly vm: SimulatedVm;
  /** The connections, one per channel; the first also carries the control messages. */
  readonly links: readonly Link[];
  readonly report: TransferReporter;
  readonly signal: AbortSignal;
  readonly observe: TransferObserver;
  /** Decompression workers, when the source compresses. Default one per core. */
  readonly compressionWorkers?: number;
  /** Hash digest blocks during the passes; default {@link digestPlan}. */
  readonly digestAhead?: boolean;
}

class Mismatch extends Error {}

export async function runDestination(t: DestinationTransfer): Promise<TransferResult> {
  const { vm, links, report, signal, observe } = t;
  const link = links[0]!;
  const memory = vm.memory;
  const pageSize = memory.pageSize;
  const started = performance.now();
  const stats = emptyStats("destination", false);
  stats.channels = links.length;
  const snapshot = (): TransferStats => ({ ...stats, durationMs: performance.now() - started });
  const onAbort = () => {
    for (const l of links) l.socket.destroy();
  };
  signal.addEventListener("abort", onAbort, { once: true });
  // A data channel's failure ends the transfer: the control loop races it.
  let failChannel: (err: unknown) => void = () => {};
  const channelFailed = new Promise<never>((_, reject) => (failChannel = reject));
  channelFailed.catch(() => {});
  const next = async (l: Link) => {
    const frame = await Promise.race([l.reader.next(), channelFailed]);
    stats.wireBytes += 6 + frame.length;
    if (frame.type === MessageType.Abort) {
      const p = frame.payload;
      throw Object.assign(new WireError(`source aborted the transfer: ${p.subarray(1).toString("utf8")}`), {
        abortReason: p[0] as AbortReason,
      });
    }
    return frame;
  };

  // The image digest's blocks are hashed as pages land (again when rewritten), as on the source.
  let digests: BlockDigests | undefined;
  let digest: Promise<string> | undefined;
  let pass = 0;
  let blackout = false;
  let passPages = 0;
  let passDone = 0;
  const progress = (count: number) => {
    stats.pages += count;
    stats.pageBytes += count * pageSize;
    if (blackout) stats.blackoutPages += count;
    passDone += count;
    observe({
      type: "progress",
      side: "destination",
      pass,
      blackout,
      passDone,
      passPages,
      pageBytes: stats.pageBytes,
      imageBytes: memory.sizeBytes,
    });
  };
  const checkRange = (first: number, count: number) => {
    if (count < 1 || first + count > memory.pageCount)
      throw new WireError(`memory stream: pages ${first} … ${first + count - 1} out of range`);
  };
  // The run list at the start of a Pages or CompressedPages frame.
  const parseRuns = (frame: Frame) => {
    const n = frame.length >= 4 ? frame.head(4).readUInt32BE(0) : 0;
    const listBytes = 4 + 8 * n;
    if (n < 1 || frame.length < listBytes)
      throw new WireError(`memory stream: ${MessageType[frame.type]} frame of ${frame.length} bytes with ${n} runs`);
    const list = frame.head(listBytes);
    const runs: number[] = [];
    let pages = 0;
    for (let at = 4; at < listBytes; at += 8) {
      const first = list.readUInt32BE(at);
      const count = list.readUInt32BE(at + 4);
      checkRange(first, count);
      runs.push(first, count);
      pages += count;
    }
    const sumBytes = stats.checksums ? 4 * pages : 0;
    if (frame.length < listBytes + sumBytes)
      throw new WireError(`memory stream: ${MessageType[frame.type]} frame too short for its checksums`);
    return { runs, pages, listBytes, sumBytes };
  };
  const applyPages = (frame: Frame) => {
    const { runs, pages, listBytes, sumBytes } = parseRuns(frame);
    // A reader with our sink has put the pages in memory already (and checked the length).
    const placed = frame.placed;
    if (!placed && frame.length !== listBytes + sumBytes + pages * pageSize)
      throw new WireError(`memory stream: Pages frame of ${frame.length} bytes does not hold ${pages} pages`);
    let at = listBytes + sumBytes;
    for (let r = 0; r < runs.length; r += 2) {
      if (!placed) {
        for (const view of memory.views(runs[r]!, runs[r + 1]!)) {
          frame.copyTo(view, at);
          at += view.length;
        }
      }
      memory.markWritten(runs[r]!, runs[r + 1]!);
      digests?.touch(runs[r]!, runs[r + 1]!);
    }
    if (sumBytes > 0) {
      const sums = frame.head(listBytes + sumBytes);
      let k = listBytes;
      for (let r = 0; r < runs.length; r += 2) {
        for (let i = runs[r]!, end = i + runs[r + 1]!; i < end; i++, k += 4) {
          if (crc32(memory.page(i)) !== sums.readUInt32BE(k))
            throw new Mismatch(`checksum mismatch on page ${i} in pass ${pass}`);
        }
      }
    }
    progress(pages);
  };
  // Compressed runs are inflated (and checked) by the workers straight into
  // the image; a pass is acknowledged only once its runs are all in.
  let inflaters: Promise<PageWorkers | undefined> | undefined;
  const inflight = new Set<Promise<void>>();
  const applyCompressed = (frame: Frame) => {
    const { runs, pages, listBytes, sumBytes } = parseRuns(frame);
    if (frame.length === listBytes + sumBytes)
      throw new WireError(`memory stream: CompressedPages frame of ${frame.length} bytes holds no data`);
    const sums = new Uint8Array(sumBytes);
    frame.copyTo(Buffer.from(sums.buffer), listBytes);
    const data = new Uint8Array(frame.length - listBytes - sumBytes);
    frame.copyTo(Buffer.from(data.buffer), listBytes + sumBytes);
    const at = pass;
    const targets: [number, number, number][] = [];
    for (let r = 0; r < runs.length; r += 2) targets.push(...memory.byteRanges(runs[r]!, runs[r + 1]!));
    // The page a mismatch names: the k-th page of the frame's runs.
    const pageAt = (k: number) => {
      for (let r = 0; r < runs.length; r += 2) {
        if (k < runs[r + 1]!) return runs[r]! + k;
        k -= runs[r + 1]!;
      }
      return -1;
    };
    inflaters ??= startWorkers(memory, t.compressionWorkers ?? availableParallelism());
    const job = inflaters
      .then((pool) => {
        if (pool === undefined) throw new Mismatch("no worker threads to decompress pages");
        return pool.run({ op: "inflate", targets, pageSize, data, sums }, [data.buffer, sums.buffer]);
      })
      .then(
        () => {
          for (let r = 0; r < runs.length; r += 2) {
            memory.markWritten(runs[r]!, runs[r + 1]!);
            digests?.touch(runs[r]!, runs[r + 1]!);
          }
          stats.compressedPages += pages;
          progress(pages);
        },
        (err: Error) => {
          throw err instanceof PageMismatch
            ? new Mismatch(`checksum mismatch on page ${pageAt(err.pageOffset)} in pass ${at}`)
            : new WireError(`memory stream: ${err.message}`);
        },
      )
      .catch(failChannel)
      .finally(() => inflight.delete(job));
    inflight.add(job);
  };
  const applyZeroPages = (frame: Frame) => {
    if (frame.length % 8 !== 0) throw new WireError(`memory stream: ZeroPages frame of ${frame.length} bytes`);
    const p = frame.payload;
    for (let at = 0; at < p.length; at += 8) {
      const first = p.readUInt32BE(at);
      const count = p.readUInt32BE(at + 4);
      checkRange(first, count);
      memory.zeroPages(first, count);
      digests?.touch(first, count);
      stats.zeroPages += count;
      progress(count);
    }
  };

  // Pass ends per channel; a pass is complete when every channel ended it.
  const ended = new Map<number, number>();
  const complete = new Map<number, { done: Promise<void>; resolve: () => void }>();
  const completion = (p: number) => {
    let c = complete.get(p);
    if (c === undefined) {
      let resolve = () => {};
      const done = new Promise<void>((r) => (resolve = r));
      c = { done, resolve };
      complete.set(p, c);
    }
    return c;
  };
  /** Handles a data frame (any channel); returns true on the channel's last PassEnd. */
  const onData = (frame: Frame): boolean => {
    switch (frame.type) {
      case MessageType.Pages:
        applyPages(frame);
        return false;
      case MessageType.ZeroPages:
        applyZeroPages(frame);
        return false;
      case MessageType.CompressedPages:
        applyCompressed(frame);
        return false;
      case MessageType.PassEnd: {
        const p = frame.head(5);
        const n = p.readUInt32BE(0);
        const count = (ended.get(n) ?? 0) + 1;
        ended.set(n, count);
        if (count === links.length) {
          ended.delete(n);
          const end = Buffer.alloc(4);
          end.writeUInt32BE(n, 0);
          const last = p[4] === 1;
          void Promise.all(inflight).then(() => {
            if (link.socket.destroyed) return;
            // The blackout pass is answered by OfflineAck instead.
            if (!last) link.socket.write(encodeFrame(MessageType.PassAck, end));
            completion(n).resolve();
          });
        }
        return p[4] === 1;
      }
      default:
        throw new WireError(`memory stream: unexpected ${MessageType[frame.type]} on a data channel`);
    }
  };
  for (const l of links.slice(1)) {
    void (async () => {
      let last = false;
      while (!last) last = onData(await next(l));
    })().catch(failChannel);
  }

  try {
    const setup = await next(link);
    if (setup.type !== MessageType.Setup)
      throw new WireError(`memory stream: expected Setup, got ${MessageType[setup.type]}`);
    const s = setup.payload;
    const sourcePageSize = s.readUInt32BE(0);
    const pageCount = s.readUInt32BE(4);
    stats.checksums = (s[8]! & 1) === 1;
    if (sourcePageSize !== pageSize || pageCount !== memory.pageCount) {
      throw new Mismatch(
        `memory layout mismatch: source has ${pageCount} pages of ${sourcePageSize} bytes, ` +
          `destination ${memory.pageCount} of ${pageSize}`,
      );
    }
    // Readers that can put pages in memory themselves get to from now on.
    const sink = {
      pageSize,
      sumBytes: (pages: number) => (stats.checksums ? 4 * pages : 0),
      views: (first: number, count: number) => memory.views(first, count),
    };
    for (const l of links) l.reader.sink = sink;
    link.socket.write(encodeFrame(MessageType.Ready));
    // Before the first page is applied; after the Ready, which the workers' start would delay.
    digests = BlockDigests.start(memory, t.digestAhead);
    observe({ type: "connected", side: "destination" });
    report.phase(Phase.SETUP_DONE);
    let device: DeviceState | undefined;
    for (;;) {
      const frame = await next(link);
      if (
        frame.type === MessageType.Pages ||
        frame.type === MessageType.ZeroPages ||
        frame.type === MessageType.CompressedPages ||
        frame.type === MessageType.PassEnd
      ) {
        onData(frame);
        continue;
      }
      const p = frame.payload;
      switch (frame.type) {
        case MessageType.PassBegin: {
          pass = p.readUInt32BE(0);
          passPages = p.readUInt32BE(4);
          passDone = 0;
          blackout = p[8] === 1;
          if (pass === 1) report.phase(Phase.TRANSFER_IN_PROGRESS);
          if (blackout) {
            report.phase(Phase.BLACKOUT_STARTED);
            digests?.pause(true);
          } else stats.brownoutPasses = pass;
          observe({ type: "pass", side: "destination", pass, blackout, pages: passPages, throttlePercent: 100 });
          break;
        }
        case MessageType.DeviceState: {
          device = JSON.parse(p.toString("utf8")) as DeviceState;
          try {
            vm.loadDeviceState(device);
          } catch (err) {
            throw new Mismatch(`device state rejected: ${(err as Error).message}`);
          }
          break;
        }
        case MessageType.BlackoutEnd: {
          if (device === undefined) throw new Mismatch("blackout ended without device state");
          // Every channel's pages of the blackout pass are in before we say so.
          await Promise.race([completion(pass).done, channelFailed]);
          link.socket.write(encodeFrame(MessageType.OfflineAck));
          stats.transferMs = performance.now() - started;
          report.phase(Phase.OFFLINE_DONE);
          // The image is final: digest (what is left of) it while the source
          // digests its own, once the OfflineAck is on its way.
          const final = digests;
          digest = new Promise<void>((resolve) => setImmediate(resolve)).then(() => final?.digest() ?? memory.digest());
          digest.catch(() => {});
          break;
        }
        case MessageType.Verify: {
          stats.blackoutMs = p.readDoubleBE(32);
          report.blackoutExited({ durationMs: stats.blackoutMs, stoppedAtMs: p.readDoubleBE(40) });
          const theirs = p.subarray(0, 32).toString("hex");
          stats.digest = await (digest ?? Promise.resolve(memory.digest()));
          const ok = theirs === stats.digest;
          const message = ok ? "" : `image digest mismatch: destination ${stats.digest}, source ${theirs}`;
          const result = Buffer.concat([
            Buffer.from([ok ? 1 : 0]),
            Buffer.from(stats.digest, "hex"),
            Buffer.from(message, "utf8"),
          ]);
          await new Promise<void>((resolve) =>
            link.socket.end(encodeFrame(MessageType.Result, result), () => resolve()),
          );
          if (!ok) throw new Mismatch(message);
          observe({ type: "done", side: "destination", stats: snapshot() });
          return { ok: true };
        }
        default:
          throw new WireError(`memory stream: unexpected ${MessageType[frame.type]} on the destination`);
      }
    }
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (signal.aborted) return fail(PhaseState.CANCELLED, "cancelled", err);
    if ((err as { abortReason?: AbortReason }).abortReason === AbortReason.Cancelled)
      return fail(PhaseState.CANCELLED, message, err);
    if (err instanceof Mismatch) await sendAbort(link, AbortReason.ChecksumMismatch, message);
    else await sendAbort(link, AbortReason.Error, message);
    return fail(PhaseState.DESTINATION_FAILED, message, err);
  } finally {
    digests?.close();
    void inflaters?.then((w) => w?.close());
    signal.removeEventListener("abort", onAbort);
    for (const l of links) l.socket.destroy();
  }

  function fail(state: PhaseState, message: string, cause?: unknown): TransferResult {
    observe({ type: "failed", side: "destination", message, stats: snapshot() });
    return { ok: false, state, message, ...(cause === undefined ? {} : { cause }) };
  }
}
