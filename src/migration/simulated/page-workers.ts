/**
 * Worker threads that work on a memory image in place (its chunks are
 * SharedArrayBuffers): hashing digest blocks, compressing page runs on the
 * source, decompressing them into the image on the destination. The heavy
 * byte work of a transfer runs here, on other cores, while the event loop
 * keeps the sockets busy.
 *
 * node:worker_threads is loaded only when a pool is made. The worker's code
 * is plain CommonJS evaluated from a string, so it runs the same from the
 * sources (tests) and from dist.
 *
 * @module
 */
import type { Worker } from "node:worker_threads";
import type { MemoryImage } from "./memory-image.js";

/** What a worker does; byte ranges are inside one chunk of the image. */
export type PageJob =
  | {
      /** SHA-256 of each `block` bytes of the range (the last may be shorter), concatenated. */
      readonly op: "hash";
      readonly chunk: number;
      readonly start: number;
      readonly end: number;
      readonly block: number;
    }
  | {
      readonly op: "deflate";
      /** Where the pages are: [chunk, start, end] ranges, in order. */
      readonly sources: readonly (readonly [number, number, number])[];
      readonly pageSize: number;
      readonly checksums: boolean;
    }
  | {
      readonly op: "inflate";
      /** Where the pages go: [chunk, start, end] ranges, in order. */
      readonly targets: readonly (readonly [number, number, number])[];
      readonly pageSize: number;
      readonly data: Uint8Array;
      /** count × CRC-32 u32 BE, or empty. */
      readonly sums: Uint8Array;
    };

export interface DeflateResult {
  /** count × CRC-32 u32 BE of the pages as read (empty without checksums). */
  readonly sums: Uint8Array;
  /** The raw-deflated pages, or the pages themselves when compressing did not make them smaller. */
  readonly data: Uint8Array;
  readonly compressed: boolean;
}

const WORKER_SOURCE = `
"use strict";
const { parentPort, workerData } = require("node:worker_threads");
const { createHash } = require("node:crypto");
const zlib = require("node:zlib");
const chunks = workerData.chunks.map((c) => Buffer.from(c));
// Moves only buffers that own their memory (small ones share Node's pool).
const owned = (...bufs) =>
  bufs.filter((b) => b.byteLength > 0 && b.byteLength === b.buffer.byteLength).map((b) => b.buffer);
function sumsOf(bytes, pageSize) {
  const count = bytes.length / pageSize;
  const sums = Buffer.allocUnsafe(4 * count);
  for (let k = 0; k < count; k++) {
    sums.writeUInt32BE(zlib.crc32(bytes.subarray(k * pageSize, (k + 1) * pageSize)), 4 * k);
  }
  return sums;
}
parentPort.on("message", ({ id, job }) => {
  try {
    if (job.op === "inflate") {
      const length = job.targets.reduce((n, [, start, end]) => n + end - start, 0);
      const out = zlib.inflateRawSync(job.data, { maxOutputLength: length + 1 });
      if (out.length !== length)
        throw new Error("compressed pages inflate to " + out.length + " bytes, expected " + length);
      if (job.sums.length) {
        const sums = Buffer.from(job.sums.buffer, job.sums.byteOffset, job.sums.byteLength);
        for (let k = 0; k < length / job.pageSize; k++) {
          if (zlib.crc32(out.subarray(k * job.pageSize, (k + 1) * job.pageSize)) !== sums.readUInt32BE(4 * k)) {
            parentPort.postMessage({ id, mismatch: k });
            return;
          }
        }
      }
      let at = 0;
      for (const [chunk, start, end] of job.targets) at += out.copy(chunks[chunk], start, at, at + end - start);
      parentPort.postMessage({ id, result: true });
      return;
    }
    if (job.op === "hash") {
      const out = Buffer.allocUnsafeSlow(32 * Math.ceil((job.end - job.start) / job.block));
      for (let off = job.start, k = 0; off < job.end; off += job.block, k++) {
        const block = chunks[job.chunk].subarray(off, Math.min(off + job.block, job.end));
        createHash("sha256").update(block).digest().copy(out, 32 * k);
      }
      parentPort.postMessage({ id, result: out }, owned(out));
    } else if (job.op === "deflate") {
      // A copy first: the guest may write while we read; the sums and the
      // compressed bytes must describe the same bytes.
      const copy = Buffer.concat(job.sources.map(([chunk, start, end]) => chunks[chunk].subarray(start, end)));
      const sums = job.checksums ? sumsOf(copy, job.pageSize) : Buffer.alloc(0);
      // Run-length matching only: several times faster than level 1 and as good on guest memory.
      const z = zlib.deflateRawSync(copy, { level: 1, strategy: zlib.constants.Z_RLE });
      const compressed = z.length < copy.length;
      const data = compressed ? z : copy;
      parentPort.postMessage({ id, result: { sums, data, compressed } }, owned(sums, data));
    }
  } catch (err) {
    parentPort.postMessage({ id, error: String(err && err.message || err) });
  }
});
`;

/** A page's checksum did not match after decompression. */
export class PageMismatch extends Error {
  constructor(readonly pageOffset: number) {
    super(`checksum mismatch at page ${pageOffset} of the run`);
  }
}

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
}

/** A fixed pool of page workers over one memory image. */
export class PageWorkers {
  readonly size: number;
  readonly #workers: Worker[];
  readonly #load: number[];
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #closed = false;

  private constructor(workers: Worker[]) {
    this.size = workers.length;
    this.#workers = workers;
    this.#load = workers.map(() => 0);
    workers.forEach((w, i) => {
      w.on("message", (m: { id: number; result?: unknown; error?: string; mismatch?: number }) => {
        this.#load[i]!--;
        const p = this.#pending.get(m.id);
        this.#pending.delete(m.id);
        if (p === undefined) return;
        if (m.mismatch !== undefined) p.reject(new PageMismatch(m.mismatch));
        else if (m.error !== undefined) p.reject(new Error(m.error));
        else p.resolve(m.result);
      });
      w.on("error", (err) => this.#failAll(err));
    });
  }

  /** Starts `size` workers over the image's memory. */
  static async start(memory: MemoryImage, size: number): Promise<PageWorkers> {
    const { Worker } = await import("node:worker_threads");
    const workerData = { chunks: memory.chunks };
    return new PageWorkers(Array.from({ length: size }, () => new Worker(WORKER_SOURCE, { eval: true, workerData })));
  }

  #failAll(err: Error): void {
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
  }

  run(job: Extract<PageJob, { op: "hash" }>): Promise<Uint8Array>;
  run(job: Extract<PageJob, { op: "deflate" }>): Promise<DeflateResult>;
  run(job: Extract<PageJob, { op: "inflate" }>, transfer: ArrayBuffer[]): Promise<true>;
  run(job: PageJob, transfer: ArrayBuffer[] = []): Promise<unknown> {
    if (this.#closed) return Promise.reject(new Error("page workers closed"));
    // The least busy worker takes the job.
    let w = 0;
    for (let i = 1; i < this.#load.length; i++) if (this.#load[i]! < this.#load[w]!) w = i;
    this.#load[w]!++;
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#workers[w]!.postMessage({ id, job }, transfer);
    });
  }

  /** Stops the workers; jobs still running are rejected. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#failAll(new Error("page workers closed"));
    await Promise.all(this.#workers.map((w) => w.terminate()));
  }
}

/** A pool of page workers, or undefined when they cannot start (the work is then done on this thread). */
export function startWorkers(memory: MemoryImage, size: number): Promise<PageWorkers | undefined> {
  return PageWorkers.start(memory, size).catch(() => undefined);
}
