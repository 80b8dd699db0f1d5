/**
 * The image digest (see image-digest.ts), kept up to date while a transfer
 * runs instead of computed from scratch at its end: each digest block is
 * hashed once, on a worker, while the passes go on (the source from the
 * start, the destination as pages land), and again only when written since.
 * The verification after the blackout then hashes only the blocks written
 * since their last hash, not the whole image.
 *
 * A hash is kept only when the block's write count (see
 * {@link MemoryImage.blockWrites}) did not move between the job's start and
 * its answer: a block written while a worker read it is hashed again. The
 * result is the same digest, bit for bit, as {@link imageDigest}: SHA-256
 * over every block's SHA-256, in order. It is as good a check as that one
 * as long as every write to the image is recorded (markDirty, markWritten,
 * writePage, zeroPages), which the transfer's own writes all are.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { availableParallelism } from "node:os";
import { blockHash, digestBlock, zeroBlockHash } from "./image-digest.js";
import type { MemoryImage } from "./memory-image.js";
import { type PageWorkers, startWorkers } from "./page-workers.js";

/** Blocks per worker job at most (4 MiB: short jobs, so pausing for the blackout takes effect at once). */
const BLOCKS_PER_JOB = 16;
/** Jobs in flight per worker: one running, one waiting, so a worker never idles on the event loop. */
const JOBS_PER_WORKER = 2;

/**
 * Where a transfer hashes its image. Hashing ahead needs a core the passes
 * leave free: the sending thread and the kernel's copies (and, in the
 * bench, the peer in the same process) take two. On 2 cores, hashing ahead
 * slowed the first pass from about 40 % to 25 % of the raw socket and the
 * whole transfer too (the guest's writes during the passes also make a
 * quarter of the blocks be hashed twice), so there the blocks are hashed
 * after the blackout, on every core, by workers started only then: booting
 * a worker costs about 30 ms of a core, and four booting during the first
 * pass took a third of its CPU.
 */
export function digestPlan(cores = availableParallelism()): { ahead: boolean; workers: number } {
  return cores >= 3 ? { ahead: true, workers: cores - 1 } : { ahead: false, workers: cores };
}

/** The digest was asked for after {@link BlockDigests.close} (the transfer ended). */
export class DigestClosed extends Error {
  override name = "DigestClosed";
}

export class BlockDigests {
  readonly #memory: MemoryImage;
  readonly #startWorkers: () => Promise<PageWorkers | undefined>;
  #workers: Promise<PageWorkers | undefined> | undefined;
  #pool: PageWorkers | undefined;
  /** 32 bytes per block: its SHA-256 when {@link #hashedAt} equals its write count. */
  readonly #hashes: Buffer;
  /** Per block: the write count its hash was taken at (NaN: never hashed). */
  readonly #hashedAt: Float64Array;
  readonly #inflight: Uint8Array;
  readonly #queued: Uint8Array;
  #queue: number[] = [];
  #head = 0;
  #jobs = 0;
  #paused = false;
  #closed = false;
  #error: Error | undefined;
  #idle: (() => void) | undefined;
  /** False: {@link touch} and {@link touchStale} wait for {@link digest} (see {@link digestPlan}). */
  readonly #ahead: boolean;

  #stopWorkers: (() => void) | undefined;

  /**
   * Digests of `memory` on workers of their own, as many as {@link digestPlan}
   * says, hashing ahead as it says unless `ahead` is given; {@link close} stops them.
   */
  static start(memory: MemoryImage, ahead?: boolean): BlockDigests {
    const plan = digestPlan();
    const digests = new BlockDigests(memory, () => startWorkers(memory, plan.workers), {
      ahead: ahead ?? plan.ahead,
    });
    digests.#stopWorkers = () => void digests.#workers?.then((w) => w?.close());
    return digests;
  }

  /**
   * `workers` starts the workers blocks are hashed on (undefined: on this
   * thread, when digested); it is called at once when hashing ahead, else at
   * the first {@link digest}.
   */
  constructor(memory: MemoryImage, workers: () => Promise<PageWorkers | undefined>, options: { ahead?: boolean } = {}) {
    this.#memory = memory;
    this.#ahead = options.ahead ?? true;
    this.#startWorkers = workers;
    this.#hashes = Buffer.alloc(32 * memory.blockCount);
    this.#hashedAt = new Float64Array(memory.blockCount).fill(Number.NaN);
    this.#inflight = new Uint8Array(memory.blockCount);
    this.#queued = new Uint8Array(memory.blockCount);
    if (this.#ahead) this.#workersReady();
  }

  #workersReady(): Promise<PageWorkers | undefined> {
    this.#workers ??= this.#startWorkers().then((w) => {
      this.#pool = w;
      this.#pump();
      return w;
    });
    return this.#workers;
  }

  /** Queues the blocks of pages `first … first+count-1` for hashing (after they were written). */
  touch(first: number, count: number): void {
    if (count <= 0 || !this.#ahead) return;
    const bp = this.#memory.blockPages;
    const last = Math.floor((first + count - 1) / bp);
    for (let b = Math.floor(first / bp); b <= last; b++) this.#enqueue(b);
    this.#pump();
  }

  /** Queues every block written since its hash (the guest writes without telling us). */
  touchStale(): void {
    if (this.#ahead) this.#touchStale();
  }

  #touchStale(): void {
    for (let b = 0; b < this.#hashedAt.length; b++) if (this.#stale(b)) this.#enqueue(b);
    this.#pump();
  }

  /** While paused (the blackout), no new job starts: the transfer has the cores. */
  pause(paused: boolean): void {
    this.#paused = paused;
    this.#pump();
  }

  /** The image digest (hex): hashes the blocks written since their hash, then combines all. */
  async digest(): Promise<string> {
    this.#paused = false;
    await this.#workersReady();
    for (;;) {
      if (this.#error !== undefined) throw this.#error;
      if (this.#closed) throw new DigestClosed("the image digest was closed before it was done");
      this.#touchStale();
      if (this.#jobs === 0) {
        // Nothing runs: every block is fresh (with no workers, once hashed here).
        if (this.#pool === undefined) this.#hashHere();
        for (let b = 0; b < this.#hashedAt.length; b++)
          if (this.#stale(b)) throw new DigestClosed(`block ${b} stayed unhashed`);
        break;
      }
      await new Promise<void>((resolve) => (this.#idle = resolve));
    }
    return createHash("sha256").update(this.#hashes).digest("hex");
  }

  /** No job starts any more; answers still coming are dropped; workers of its own stop. */
  close(): void {
    this.#closed = true;
    this.#stopWorkers?.();
  }

  #stale(b: number): boolean {
    return this.#inflight[b] === 0 && this.#hashedAt[b] !== this.#memory.blockWrites(b);
  }

  #enqueue(b: number): void {
    if (this.#queued[b] === 1) return;
    this.#queued[b] = 1;
    this.#queue.push(b);
  }

  /** Takes the next stale block off the queue (known-zero ones are settled on the way), or -1. */
  #takeStale(): number {
    const m = this.#memory;
    while (this.#head < this.#queue.length) {
      const b = this.#queue[this.#head++]!;
      this.#queued[b] = 0;
      if (!this.#stale(b)) continue;
      const r = digestBlock(this.#memory, b);
      if (!m.knownZero(r.first, r.count)) return b;
      zeroBlockHash(r.end - r.start).copy(this.#hashes, 32 * b);
      this.#hashedAt[b] = m.blockWrites(b);
    }
    this.#queue = [];
    this.#head = 0;
    return -1;
  }

  #pump(): void {
    const pool = this.#pool;
    if (this.#closed || this.#paused || this.#error !== undefined || pool === undefined) return;
    const m = this.#memory;
    while (this.#jobs < JOBS_PER_WORKER * pool.size) {
      const b = this.#takeStale();
      if (b < 0) return;
      // The stale blocks after it in the same chunk join the job (one read of consecutive memory).
      const first = digestBlock(this.#memory, b);
      let n = 1;
      while (n < BLOCKS_PER_JOB && b + n < this.#hashedAt.length && this.#stale(b + n)) {
        const r = digestBlock(this.#memory, b + n);
        if (r.chunk !== first.chunk || m.knownZero(r.first, r.count)) break;
        n++;
      }
      const last = digestBlock(this.#memory, b + n - 1);
      const at = Array.from({ length: n }, (_, k) => m.blockWrites(b + k));
      this.#inflight.fill(1, b, b + n);
      this.#jobs++;
      pool
        .run({ op: "hash", chunk: first.chunk, start: first.start, end: last.end, block: first.end - first.start })
        .then(
          (hashes) => {
            for (let k = 0; k < n; k++) {
              // Written while the worker read it: the hash may mix old and new bytes.
              if (m.blockWrites(b + k) !== at[k]) continue;
              this.#hashes.set(hashes.subarray(32 * k, 32 * (k + 1)), 32 * (b + k));
              this.#hashedAt[b + k] = at[k]!;
            }
          },
          (err: Error) => {
            if (!this.#closed) this.#error ??= err;
          },
        )
        .finally(() => {
          this.#inflight.fill(0, b, b + n);
          this.#jobs--;
          for (let k = 0; k < n; k++) if (this.#stale(b + k)) this.#enqueue(b + k);
          this.#pump();
          if (this.#jobs === 0) {
            const idle = this.#idle;
            this.#idle = undefined;
            idle?.();
          }
        });
    }
  }

  // Without workers: every stale block on this thread.
  #hashHere(): void {
    const m = this.#memory;
    for (let b = 0; b < this.#hashedAt.length; b++) {
      if (!this.#stale(b)) continue;
      blockHash(m, digestBlock(m, b)).copy(this.#hashes, 32 * b);
      this.#hashedAt[b] = m.blockWrites(b);
    }
  }
}
