/**
 * How the destination applies the pages of a pass, whatever channel they
 * come on: Pages copied into memory (or placed there already by the reader)
 * and their checksums verified, CompressedPages inflated by worker threads
 * straight into the image, ZeroPages markers; each applied page counted and
 * its digest block marked.
 *
 * @module
 */
import { availableParallelism } from "node:os";
import { crc32 } from "node:zlib";
import type { BlockDigests } from "./block-digests.js";
import type { MemoryImage } from "./memory-image.js";
import { PageMismatch, type PageWorkers, startWorkers } from "./page-workers.js";
import type { TransferObserver } from "./transfer-events.js";
import type { TransferTally } from "./transfer-tally.js";
import {
  decodeRunList,
  decodeZeroPages,
  type Frame,
  MessageType,
  type PageRuns,
  runCount,
  runListBytes,
  WireError,
} from "./wire-protocol.js";

/** The destination's image does not match what the source sent: a checksum, the layout, the device state. */
export class Mismatch extends Error {}

/** Where the destination is: the pass being applied. */
export interface PassPosition {
  pass: number;
  blackout: boolean;
  /** Pages the pass holds, as PassBegin said. */
  passPages: number;
  /** Pages of the pass applied so far. */
  passDone: number;
}

export interface PageApplierOptions {
  readonly memory: MemoryImage;
  readonly tally: TransferTally;
  readonly observe: TransferObserver;
  /** Decompression workers, when the source compresses. */
  readonly compressionWorkers: number | undefined;
  /** A compressed frame failed after it was handed to the workers. */
  readonly onJobFailed: (err: Error) => void;
}

/** The k-th page of a frame's runs (a mismatch names it). */
function pageAt(runs: PageRuns, k: number): number {
  for (let r = 0; r < runs.length; r += 2) {
    if (k < runs[r + 1]!) return runs[r]! + k;
    k -= runs[r + 1]!;
  }
  return -1;
}

export class PageApplier {
  readonly #o: PageApplierOptions;
  /** Where the transfer is; {@link beginPass} moves it. */
  readonly position: PassPosition = { pass: 0, blackout: false, passPages: 0, passDone: 0 };
  /** Blocks of the image digest, hashed as pages land; set once the layout is agreed. */
  digests: BlockDigests | undefined;
  #inflaters: Promise<PageWorkers | undefined> | undefined;
  /** Compressed frames being inflated: a pass is acknowledged only once they are all in. */
  readonly #inflight = new Set<Promise<void>>();

  constructor(o: PageApplierOptions) {
    this.#o = o;
  }

  /** A pass begins: its pages are counted from 0. */
  beginPass(pass: number, passPages: number, blackout: boolean): void {
    Object.assign(this.position, { pass, passPages, passDone: 0, blackout });
  }

  /** Every compressed frame handed out so far is applied (or failed). */
  settled(): Promise<unknown> {
    return Promise.all(this.#inflight);
  }

  close(): void {
    void this.#inflaters?.then((w) => w?.close());
  }

  /** A Pages frame. */
  applyPages(frame: Frame): void {
    const memory = this.#o.memory;
    const { runs, pages, listBytes, sumBytes } = this.#runs(frame);
    // A reader with our sink has put the pages in memory already (and checked the length).
    const placed = frame.placed;
    if (!placed && frame.length !== listBytes + sumBytes + pages * memory.pageSize)
      throw new WireError(`memory stream: Pages frame of ${frame.length} bytes does not hold ${pages} pages`);
    let at = listBytes + sumBytes;
    for (let r = 0; r < runs.length; r += 2) {
      if (!placed) {
        for (const view of memory.views(runs[r]!, runs[r + 1]!)) {
          frame.copyTo(view, at);
          at += view.length;
        }
      }
      this.#written(runs[r]!, runs[r + 1]!);
    }
    if (sumBytes > 0) this.#verify(runs, frame.head(listBytes + sumBytes).subarray(listBytes));
    this.#progress(pages);
  }

  /** A CompressedPages frame: inflated (and checked) by the workers, in the background. */
  applyCompressed(frame: Frame): void {
    const memory = this.#o.memory;
    const { runs, pages, listBytes, sumBytes } = this.#runs(frame);
    if (frame.length === listBytes + sumBytes)
      throw new WireError(`memory stream: CompressedPages frame of ${frame.length} bytes holds no data`);
    const sums = new Uint8Array(sumBytes);
    frame.copyTo(Buffer.from(sums.buffer), listBytes);
    const data = new Uint8Array(frame.length - listBytes - sumBytes);
    frame.copyTo(Buffer.from(data.buffer), listBytes + sumBytes);
    const pass = this.position.pass;
    const targets: [number, number, number][] = [];
    for (let r = 0; r < runs.length; r += 2) targets.push(...memory.byteRanges(runs[r]!, runs[r + 1]!));
    this.#inflaters ??= startWorkers(memory, this.#o.compressionWorkers ?? availableParallelism());
    const job = this.#inflaters
      .then((pool) => {
        if (pool === undefined) throw new Mismatch("no worker threads to decompress pages");
        const pageSize = memory.pageSize;
        return pool.run({ op: "inflate", targets, pageSize, data, sums }, [data.buffer, sums.buffer]);
      })
      .then(
        () => {
          for (let r = 0; r < runs.length; r += 2) this.#written(runs[r]!, runs[r + 1]!);
          this.#o.tally.stats.compressedPages += pages;
          this.#progress(pages);
        },
        (err: Error) => {
          throw err instanceof PageMismatch
            ? new Mismatch(`checksum mismatch on page ${pageAt(runs, err.pageOffset)} in pass ${pass}`)
            : new WireError(`memory stream: ${err.message}`);
        },
      )
      .catch(this.#o.onJobFailed)
      .finally(() => this.#inflight.delete(job));
    this.#inflight.add(job);
  }

  /** A ZeroPages frame. */
  applyZeroPages(frame: Frame): void {
    const memory = this.#o.memory;
    const runs = decodeZeroPages(frame.payload, memory.pageCount);
    for (let r = 0; r < runs.length; r += 2) {
      const first = runs[r]!;
      const count = runs[r + 1]!;
      memory.zeroPages(first, count);
      this.digests?.touch(first, count);
      this.#o.tally.stats.zeroPages += count;
      this.#progress(count);
    }
  }

  /** The run list at the start of a Pages or CompressedPages frame, and where the checksums and data start. */
  #runs(frame: Frame): { runs: number[]; pages: number; listBytes: number; sumBytes: number } {
    const n = frame.length >= 4 ? runCount(frame.head(4)) : 0;
    const listBytes = runListBytes(n);
    if (n < 1 || frame.length < listBytes)
      throw new WireError(`memory stream: ${MessageType[frame.type]} frame of ${frame.length} bytes with ${n} runs`);
    const { runs, pages } = decodeRunList(frame.head(listBytes), this.#o.memory.pageCount);
    const sumBytes = this.#o.tally.stats.checksums ? 4 * pages : 0;
    if (frame.length < listBytes + sumBytes)
      throw new WireError(`memory stream: ${MessageType[frame.type]} frame too short for its checksums`);
    return { runs, pages, listBytes, sumBytes };
  }

  #verify(runs: PageRuns, sums: Buffer): void {
    let k = 0;
    for (let r = 0; r < runs.length; r += 2) {
      for (let i = runs[r]!, end = i + runs[r + 1]!; i < end; i++, k += 4) {
        if (crc32(this.#o.memory.page(i)) !== sums.readUInt32BE(k))
          throw new Mismatch(`checksum mismatch on page ${i} in pass ${this.position.pass}`);
      }
    }
  }

  #written(first: number, count: number): void {
    this.#o.memory.markWritten(first, count);
    this.digests?.touch(first, count);
  }

  #progress(count: number): void {
    const p = this.position;
    const stats = this.#o.tally.stats;
    this.#o.tally.pages(count, this.#o.memory.pageSize, p.blackout);
    p.passDone += count;
    const { pass, blackout, passDone, passPages } = p;
    const progress = { pass, blackout, passDone, passPages, pageBytes: stats.pageBytes };
    this.#o.observe({ type: "progress", side: "destination", ...progress, imageBytes: this.#o.memory.sizeBytes });
  }
}
