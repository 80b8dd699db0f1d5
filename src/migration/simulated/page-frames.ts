/**
 * How the source puts pages on the wire: Pages frames written straight from
 * guest memory (no copy), CompressedPages deflated by worker threads where
 * that pays, ZeroPages markers; each frame on the next channel's turn.
 *
 * @module
 */
import { crc32 } from "node:zlib";
import type { ChannelScheduler } from "./channel-scheduler.js";
import type { MemoryImage } from "./memory-image.js";
import { type PageWorkers, startWorkers } from "./page-workers.js";
import type { PreCopyParams } from "./pre-copy-params.js";
import type { TransferTally } from "./transfer-tally.js";
import { encodePagesHead, encodeZeroPages, MessageType, type PageRuns } from "./wire-protocol.js";

/** Test hooks: faults the source injects on purpose. */
export interface SourceFaults {
  /** Flip one byte of this page on the wire the first time it is sent, after its checksum is computed. */
  readonly corruptPageOnWire?: number;
  /** Destroy the memory connection once this many page bytes were sent. */
  readonly dropConnectionAfterBytes?: number;
}

/** Data page bytes sent each way (uncompressed, compressed) to find whether compression pays. */
const PROBE_BYTES = 32 * 1024 * 1024;

/**
 * Compression is used where it pays: the first PROBE_BYTES of data pages go
 * uncompressed and then as many compressed, each timed to the link's drain;
 * the faster way sends the rest (and the blackout, which is never a probe).
 * A link slower than the workers (TCP between hosts) compresses, a local
 * socket does not.
 */
class CompressionProbe {
  #mode: "probe-raw" | "probe-compressed" | "raw" | "compressed" = "probe-raw";
  #bytes = 0;
  #since = 0;
  #rawRate = 0;

  get probing(): boolean {
    return this.#mode === "probe-raw" || this.#mode === "probe-compressed";
  }

  /** Whether the next frame goes compressed; starts a probe's clock. */
  compress(): boolean {
    if (this.#bytes === 0) this.#since = performance.now();
    return this.#mode === "compressed" || this.#mode === "probe-compressed";
  }

  /** `bytes` of pages went out; true when a probe is complete and, once the link drained, {@link measure}d. */
  sent(bytes: number): boolean {
    if (!this.probing) return false;
    this.#bytes += bytes;
    return this.#bytes >= PROBE_BYTES;
  }

  /** Ends a probe: its rate, and once both are known the way for the rest. */
  measure(): void {
    const rate = this.#bytes / Math.max(performance.now() - this.#since, 0.001);
    this.#bytes = 0;
    if (this.#mode === "probe-raw") {
      this.#rawRate = rate;
      this.#mode = "probe-compressed";
    } else this.#mode = rate > this.#rawRate ? "compressed" : "raw";
  }
}

export interface PageFramesOptions {
  readonly memory: MemoryImage;
  readonly params: PreCopyParams;
  readonly channels: ChannelScheduler;
  readonly tally: TransferTally;
  readonly faults: SourceFaults | undefined;
  /** Runs before work is queued; throws to stop the transfer. */
  readonly check: () => void;
}

export class PageFrames {
  readonly #o: PageFramesOptions;
  readonly #pageSize: number;
  readonly #workers: Promise<PageWorkers | undefined> | undefined;
  /** Frames being deflated: a few per worker, each sent as it is done (order within a pass does not matter). */
  readonly #inflight = new Set<Promise<void>>();
  readonly #probe = new CompressionProbe();
  #jobError: Error | undefined;
  #corrupted = false;

  constructor(o: PageFramesOptions) {
    this.#o = o;
    this.#pageSize = o.memory.pageSize;
    const workers = o.params.compressionWorkers;
    this.#workers = workers === undefined ? undefined : startWorkers(o.memory, workers);
  }

  /** The compression workers, once started (undefined: no compression). */
  workers(): Promise<PageWorkers | undefined> | undefined {
    return this.#workers;
  }

  /** Throws the first failure of a compression job. */
  checkJobs(): void {
    if (this.#jobError !== undefined) throw this.#jobError;
  }

  /** One frame's runs of data pages, compressed when the probe says it pays (never a frame with a fault in it). */
  async sendRuns(pool: PageWorkers | undefined, runs: PageRuns, pages: number, blackout: boolean): Promise<void> {
    const bad = this.#o.faults?.corruptPageOnWire;
    const hasBad = bad !== undefined && runs.some((v, k) => k % 2 === 0 && bad >= v && bad < v + runs[k + 1]!);
    if (pool === undefined || hasBad || (blackout && this.#probe.probing)) return this.#sendRaw(runs, pages);
    if (this.#probe.compress()) await this.#sendCompressed(pool, runs);
    else await this.#sendRaw(runs, pages);
    if (!this.#probe.sent(pages * this.#pageSize)) return;
    await this.settle();
    await this.#o.channels.flushed();
    this.#probe.measure();
  }

  /** A ZeroPages frame of `runs` (emptied), when there are any. */
  async sendZeroRuns(runs: number[]): Promise<void> {
    if (runs.length === 0) return;
    const frame = encodeZeroPages(runs);
    runs.length = 0;
    await this.#o.channels.sendNext(frame);
  }

  /** Every compression job is sent. */
  async settle(): Promise<void> {
    while (this.#inflight.size > 0) await Promise.race(this.#inflight);
    this.#o.check();
  }

  close(): void {
    void this.#workers?.then((w) => w?.close());
  }

  // A Pages frame: its head, and the pages straight from guest memory, all in one writev.
  async #sendRaw(runs: PageRuns, pages: number): Promise<void> {
    const { memory, params } = this.#o;
    const pageSize = this.#pageSize;
    const sumBytes = params.checksums ? 4 * pages : 0;
    const { head, sumsAt } = encodePagesHead(MessageType.Pages, runs, sumBytes, pages * pageSize);
    const body: Buffer[] = [head];
    let sumAt = sumsAt;
    for (let r = 0; r < runs.length; r += 2) {
      for (const view of memory.views(runs[r]!, runs[r + 1]!)) {
        for (let at = 0; sumBytes > 0 && at < view.length; at += pageSize, sumAt += 4)
          head.writeUInt32BE(crc32(view.subarray(at, at + pageSize)), sumAt);
        body.push(this.#corruptOnWire(view, runs[r]!, runs[r + 1]!));
      }
    }
    await this.#o.channels.sendNext(...body);
  }

  /** The fault hook: the bad page's last byte flipped, on the wire only, once (after its checksum). */
  #corruptOnWire(view: Buffer, first: number, count: number): Buffer {
    const bad = this.#o.faults?.corruptPageOnWire;
    if (this.#corrupted || bad === undefined || bad < first || bad >= first + count) return view;
    const copy = Buffer.from(view);
    copy[(bad - first + 1) * this.#pageSize - 1]! ^= 0xff;
    this.#corrupted = true;
    return copy;
  }

  async #sendCompressed(pool: PageWorkers, runs: PageRuns): Promise<void> {
    while (this.#inflight.size >= 2 * pool.size) await Promise.race(this.#inflight);
    this.#o.check();
    const sources: [number, number, number][] = [];
    for (let r = 0; r < runs.length; r += 2) sources.push(...this.#o.memory.byteRanges(runs[r]!, runs[r + 1]!));
    const job = pool
      .run({ op: "deflate", sources, pageSize: this.#pageSize, checksums: this.#o.params.checksums })
      .then(async (r) => {
        const sums = Buffer.from(r.sums.buffer, r.sums.byteOffset, r.sums.byteLength);
        const data = Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength);
        const type = r.compressed ? MessageType.CompressedPages : MessageType.Pages;
        if (r.compressed) for (let k = 1; k < runs.length; k += 2) this.#o.tally.stats.compressedPages += runs[k]!;
        const { head } = encodePagesHead(type, runs, 0, sums.length + data.length);
        await this.#o.channels.sendNext(head, sums, data);
      })
      .catch((err: Error) => {
        this.#jobError ??= err;
      })
      .finally(() => this.#inflight.delete(job));
    this.#inflight.add(job);
  }
}
