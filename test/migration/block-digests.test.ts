// The image digest kept up to date during a transfer (block-digests.ts):
// blocks hashed ahead on workers, again only once written since, must give
// exactly the digest of the image as it is at the end, however the writes
// and the hashing interleave.
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { BlockDigests, DigestClosed, digestPlan } from "../../src/migration/simulated/block-digests.js";
import { DIGEST_BLOCK_BYTES, imageDigest } from "../../src/migration/simulated/image-digest.js";
import { MemoryImage } from "../../src/migration/simulated/memory-image.js";
import { type PageJob, type PageWorkers, startWorkers } from "../../src/migration/simulated/page-workers.js";
import { rejection } from "../common.js";
import { MiB } from "./simulated-shim.js";

describe("block digests", () => {
  it("equal the image digest after guest writes landed while blocks were being hashed", async () => {
    const m = new MemoryImage({ sizeBytes: 48 * MiB, fill: "pattern", zeroFraction: 0.5 });
    const workers = startWorkers(m, 1);
    const digests = new BlockDigests(m, () => workers);
    try {
      const before = imageDigest(m);
      digests.touch(0, m.pageCount);
      // Writes (recorded as the guest's are) while the first jobs run, and after.
      for (let round = 0; round < 20; round++) {
        const page = (round * 7919) % m.pageCount;
        m.page(page)[200]! ^= 0x5a;
        m.markDirty(page);
        await new Promise((r) => setImmediate(r));
      }
      digests.touchStale();
      const got = await digests.digest();
      expect(got).toBe(imageDigest(m));
      expect(got).not.toBe(before);
      // A write after the digest: the next digest sees it.
      m.writePage(3, Buffer.alloc(m.pageSize, 1));
      expect(await digests.digest()).toBe(imageDigest(m));
    } finally {
      digests.close();
      await (await workers)?.close();
    }
  });

  it("starts its workers with the first digest when not hashing ahead, at once when it is", async () => {
    const m = new MemoryImage({ sizeBytes: 8 * MiB, fill: "pattern" });
    let started = 0;
    const count = () => {
      started++;
      return Promise.resolve(undefined);
    };
    const after = new BlockDigests(m, count, { ahead: false });
    after.touch(0, m.pageCount);
    after.touchStale();
    // Booting workers during the passes would take the cores the transfer needs.
    expect(started).toBe(0);
    expect(await after.digest()).toBe(imageDigest(m));
    expect(await after.digest()).toBe(imageDigest(m));
    expect(started).toBe(1);
    after.close();
    const ahead = new BlockDigests(m, count, { ahead: true });
    expect(started).toBe(2);
    ahead.close();
  });

  it("hashes on this thread without workers, and a closed digest is an error, not a hang", async () => {
    const m = new MemoryImage({ sizeBytes: 8 * MiB, fill: "pattern" });
    const digests = new BlockDigests(m, () => Promise.resolve(undefined));
    m.zeroPages(0, 100);
    expect(await digests.digest()).toBe(imageDigest(m));
    digests.close();
    await expect(digests.digest()).rejects.toBeInstanceOf(DigestClosed);
  });
});

/** One hash job the digests gave the pool: its blocks, and the means to answer it. */
interface HeldJob {
  readonly chunk: number;
  /** Digest blocks first … end-1 (chunk 0: a block is 256 KiB). */
  readonly first: number;
  readonly end: number;
  answer(): void;
  fail(err: Error): void;
}

/**
 * Stands in for the worker pool (`PageWorkers`), which BlockDigests takes as
 * a parameter: it records every hash job and answers only when the test
 * says (or at once, with `auto`), so which jobs start, and when, is the
 * test's to see and order. Its answer is what a worker computes: the SHA-256
 * of each block of the range, read from the image when answered.
 */
class HeldPool {
  readonly jobs: HeldJob[] = [];
  auto = false;
  /**
   * The pool as the digests are given it. Awaiting it after they were made
   * runs their own reaction first (reactions run in the order registered):
   * the digests then have their pool.
   */
  readonly ready: Promise<PageWorkers> = Promise.resolve(this as unknown as PageWorkers);
  readonly #waiting: (() => void)[] = [];
  constructor(
    readonly memory: MemoryImage,
    readonly size = 1,
  ) {}

  run(job: PageJob): Promise<Uint8Array> {
    if (job.op !== "hash") throw new Error(`unexpected ${job.op} job`);
    const chunk = Buffer.from(this.memory.chunks[job.chunk]!);
    return new Promise((resolve, reject) => {
      const answer = () => {
        const hashes: Buffer[] = [];
        for (let off = job.start; off < job.end; off += job.block) {
          hashes.push(
            createHash("sha256")
              .update(chunk.subarray(off, Math.min(off + job.block, job.end)))
              .digest(),
          );
        }
        resolve(Buffer.concat(hashes));
      };
      const block = DIGEST_BLOCK_BYTES;
      this.jobs.push({
        chunk: job.chunk,
        first: job.start / block,
        end: Math.ceil(job.end / block),
        answer,
        fail: reject,
      });
      for (const check of this.#waiting.splice(0)) check();
      if (this.auto) answer();
    });
  }

  /** Resolves once `count` jobs in all were handed to the pool. */
  started(count: number): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if (this.jobs.length >= count) resolve();
        else this.#waiting.push(check);
      };
      check();
    });
  }

  /** The jobs so far as [first, end) block ranges. */
  get ranges(): [number, number][] {
    return this.jobs.map((j) => [j.first, j.end]);
  }

  get workers(): () => Promise<PageWorkers | undefined> {
    return () => this.ready;
  }
}

/** Guest-writes a byte in digest block `b` (4096-byte pages: 64 a block), recorded as the guest's writes are. */
function dirtyBlock(m: MemoryImage, b: number): void {
  const page = b * 64 + 5;
  m.page(page)[100]! ^= 0x33;
  m.markDirty(page);
}

/** Digests of `m` over a held pool, the pool ready and nothing hashed yet. */
async function heldDigests(m: MemoryImage) {
  const pool = new HeldPool(m);
  const digests = new BlockDigests(m, pool.workers);
  await pool.ready;
  return { pool, digests };
}

/** A pattern image of `blocks` digest blocks, all hashed already, and its digests over a held pool. */
async function hashedImage(blocks: number, size = 1) {
  const m = new MemoryImage({ sizeBytes: blocks * DIGEST_BLOCK_BYTES, fill: "pattern" });
  const pool = new HeldPool(m, size);
  pool.auto = true;
  const digests = new BlockDigests(m, pool.workers);
  expect(await digests.digest()).toBe(imageDigest(m));
  pool.auto = false;
  pool.jobs.length = 0;
  return { m, pool, digests };
}

describe("digest plan", () => {
  it("hashes ahead on all cores but one from three cores up, after the blackout on every core below", () => {
    expect(digestPlan(1)).toEqual({ ahead: false, workers: 1 });
    expect(digestPlan(2)).toEqual({ ahead: false, workers: 2 });
    expect(digestPlan(3)).toEqual({ ahead: true, workers: 2 });
    expect(digestPlan(8)).toEqual({ ahead: true, workers: 7 });
  });
});

describe("block digests over a held pool", () => {
  it("hashes ahead by default: the workers start with the digests", async () => {
    const m = new MemoryImage({ sizeBytes: DIGEST_BLOCK_BYTES });
    const pool = new HeldPool(m);
    let started = 0;
    const digests = new BlockDigests(m, () => {
      started++;
      return pool.workers();
    });
    expect(started).toBe(1);
    digests.close();
  });

  it("starts the blocks touched before the pool was ready once it is", async () => {
    const m = new MemoryImage({ sizeBytes: 4 * DIGEST_BLOCK_BYTES, fill: "pattern" });
    const pool = new HeldPool(m);
    let ready!: (p: PageWorkers) => void;
    const starting = new Promise<PageWorkers>((resolve) => (ready = resolve));
    const digests = new BlockDigests(m, () => starting);
    digests.touch(0, 64);
    expect(pool.jobs).toHaveLength(0);
    ready(pool as unknown as PageWorkers);
    // The digests' own reaction to the pool was registered first, so it has run when this await returns.
    await starting;
    expect(pool.ranges).toEqual([[0, 4]]);
    digests.close();
  });

  it("queues the blocks a touch covers, at once, in jobs of at most 16 consecutive stale blocks", async () => {
    // 20 blocks, none hashed yet.
    const m = new MemoryImage({ sizeBytes: 20 * DIGEST_BLOCK_BYTES, fill: "pattern" });
    const { pool, digests } = await heldDigests(m);
    // No pages, though page 1 lies inside block 0: no block.
    digests.touch(1, 0);
    expect(pool.jobs).toHaveLength(0);
    // Blocks 0 … 15 exactly: one job (16 blocks), not a second one for block 16 or for blocks already in it.
    digests.touch(0, 16 * 64);
    expect(pool.ranges).toEqual([[0, 16]]);
    // Block 0 is written while its job runs: the job's answer queues it
    // again, and in the same go nothing else (blocks 16 … 19 were not touched).
    dirtyBlock(m, 0);
    pool.jobs[0]!.answer();
    await pool.started(2);
    expect(pool.ranges).toEqual([
      [0, 16],
      [0, 1],
    ]);
    // One page of block 17: a job from block 17, joined by the stale blocks after it.
    digests.touch(17 * 64 + 3, 1);
    expect(pool.ranges).toEqual([
      [0, 16],
      [0, 1],
      [17, 20],
    ]);
    pool.auto = true;
    pool.jobs[1]!.answer();
    pool.jobs[2]!.answer();
    expect(await digests.digest()).toBe(imageDigest(m));
    digests.close();
  });

  it("settles known-zero blocks without a job, and a job stops before one", async () => {
    const m = new MemoryImage({ sizeBytes: 4 * DIGEST_BLOCK_BYTES, fill: "pattern" });
    m.zeroPages(128, 64);
    const { pool, digests } = await heldDigests(m);
    digests.touch(0, m.pageCount);
    expect(pool.ranges).toEqual([
      [0, 2],
      [3, 4],
    ]);
    for (const job of pool.jobs) job.answer();
    expect(await digests.digest()).toBe(imageDigest(m));
    expect(pool.jobs).toHaveLength(2);
    digests.close();

    // An image never written: nothing for the workers at all.
    const zero = new MemoryImage({ sizeBytes: 4 * DIGEST_BLOCK_BYTES });
    const { pool: idle, digests: zeroDigests } = await heldDigests(zero);
    zeroDigests.touch(0, zero.pageCount);
    expect(await zeroDigests.digest()).toBe(imageDigest(zero));
    expect(idle.jobs).toHaveLength(0);
    zeroDigests.close();
  });

  it("does not hash again a block whose job is still running", async () => {
    const m = new MemoryImage({ sizeBytes: 16 * DIGEST_BLOCK_BYTES, fill: "pattern" });
    const { pool, digests } = await heldDigests(m);
    digests.touch(0, m.pageCount);
    digests.touchStale();
    expect(pool.ranges).toEqual([[0, 16]]);
    pool.jobs[0]!.answer();
    expect(await digests.digest()).toBe(imageDigest(m));
    expect(pool.jobs).toHaveLength(1);
    digests.close();
  });

  it("hashes again, at once, a block written while its job ran, and only that block", async () => {
    const m = new MemoryImage({ sizeBytes: 4 * DIGEST_BLOCK_BYTES, fill: "pattern" });
    const { pool, digests } = await heldDigests(m);
    digests.touch(0, m.pageCount);
    expect(pool.ranges).toEqual([[0, 4]]);
    dirtyBlock(m, 1);
    pool.jobs[0]!.answer();
    await pool.started(2);
    expect(pool.ranges).toEqual([
      [0, 4],
      [1, 2],
    ]);
    pool.jobs[1]!.answer();
    expect(await digests.digest()).toBe(imageDigest(m));
    expect(pool.jobs).toHaveLength(2);
    digests.close();
  });

  it("leaves a block written beside a running job to the next touch", async () => {
    const { m, pool, digests } = await hashedImage(4);
    dirtyBlock(m, 0);
    dirtyBlock(m, 1);
    digests.touch(0, 64);
    expect(pool.ranges).toEqual([[0, 2]]);
    // Block 2 is written (the guest does not tell) while blocks 0 … 1 are hashed.
    dirtyBlock(m, 2);
    // Block 0 too: the job's answer queues block 0 again, and in the same go not block 2.
    dirtyBlock(m, 0);
    pool.jobs[0]!.answer();
    await pool.started(2);
    expect(pool.ranges).toEqual([
      [0, 2],
      [0, 1],
    ]);
    digests.touchStale();
    expect(pool.ranges).toEqual([
      [0, 2],
      [0, 1],
      [2, 3],
    ]);
    pool.jobs[1]!.answer();
    pool.jobs[2]!.answer();
    expect(await digests.digest()).toBe(imageDigest(m));
    digests.close();
  });

  it("keeps two jobs in flight per worker, and starts the next when one is answered", async () => {
    const { m, pool, digests } = await hashedImage(10, 2);
    for (const b of [0, 2, 4, 6, 8]) dirtyBlock(m, b);
    digests.touchStale();
    expect(pool.ranges).toEqual([
      [0, 1],
      [2, 3],
      [4, 5],
      [6, 7],
    ]);
    pool.jobs[2]!.answer();
    await pool.started(5);
    expect(pool.jobs).toHaveLength(5);
    expect(pool.ranges.at(-1)).toEqual([8, 9]);
    for (const job of pool.jobs) if (job !== pool.jobs[2]) job.answer();
    expect(await digests.digest()).toBe(imageDigest(m));
    digests.close();
  });

  it("touchStale queues every block written since its hash", async () => {
    const { m, pool, digests } = await hashedImage(6);
    dirtyBlock(m, 3);
    digests.touchStale();
    expect(pool.ranges).toEqual([[3, 4]]);
    pool.jobs[0]!.answer();
    expect(await digests.digest()).toBe(imageDigest(m));
    digests.close();
  });

  it("starts no job while paused, and catches up when unpaused", async () => {
    const { m, pool, digests } = await hashedImage(4);
    digests.pause(true);
    dirtyBlock(m, 1);
    digests.touch(64, 1);
    digests.touchStale();
    expect(pool.jobs).toHaveLength(0);
    digests.pause(false);
    expect(pool.ranges).toEqual([[1, 2]]);
    pool.jobs[0]!.answer();
    expect(await digests.digest()).toBe(imageDigest(m));
    digests.close();
  });

  it("starts no job once closed, and its digest is then DigestClosed", async () => {
    const { m, pool, digests } = await hashedImage(4);
    digests.close();
    dirtyBlock(m, 1);
    digests.touch(64, 1);
    expect(pool.jobs).toHaveLength(0);
    const err = await rejection(digests.digest(), DigestClosed);
    expect(err.name).toBe("DigestClosed");
    expect(err.message).toBe("the image digest was closed before it was done");
  });

  it("fails the digest with the first job's error, and starts no job after it", async () => {
    const { m, pool, digests } = await hashedImage(4);
    dirtyBlock(m, 0);
    dirtyBlock(m, 2);
    digests.touchStale();
    expect(pool.jobs).toHaveLength(2);
    const first = new Error("worker died");
    pool.jobs[0]!.fail(first);
    pool.jobs[1]!.fail(new Error("second"));
    // A digest ends only once no job runs: both errors were handled by then.
    await expect(digests.digest()).rejects.toBe(first);
    dirtyBlock(m, 3);
    digests.touch(3 * 64, 1);
    expect(pool.jobs).toHaveLength(2);
    // Jobs answered from now on: only the recorded error can fail the digest.
    pool.auto = true;
    await expect(digests.digest()).rejects.toBe(first);
    digests.close();
  });

  it("drops a job's error that comes after close: the digest is DigestClosed", async () => {
    const { m, pool, digests } = await hashedImage(4);
    dirtyBlock(m, 0);
    digests.touchStale();
    // Block 2 is written untold: the digest's own sweep starts its job, so
    // once that job is there the digest waits for its jobs to end.
    dirtyBlock(m, 2);
    const digest = digests.digest();
    await pool.started(2);
    expect(pool.ranges).toEqual([
      [0, 1],
      [2, 3],
    ]);
    digests.close();
    pool.jobs[0]!.fail(new Error("page workers closed"));
    pool.jobs[1]!.answer();
    // The digest wakes once both jobs ended, the error handled by then.
    await expect(digest).rejects.toBeInstanceOf(DigestClosed);
  });

  it("without hashing ahead, touches wait for the digest even once the pool runs", async () => {
    const m = new MemoryImage({ sizeBytes: 4 * DIGEST_BLOCK_BYTES, fill: "pattern" });
    const pool = new HeldPool(m);
    pool.auto = true;
    const digests = new BlockDigests(m, pool.workers, { ahead: false });
    expect(await digests.digest()).toBe(imageDigest(m));
    const jobs = pool.jobs.length;
    dirtyBlock(m, 1);
    digests.touch(64, 1);
    digests.touchStale();
    expect(pool.jobs).toHaveLength(jobs);
    expect(await digests.digest()).toBe(imageDigest(m));
    expect(pool.ranges.slice(jobs)).toEqual([[1, 2]]);
    digests.close();
  });

  it("fails, not hangs nor answers a wrong digest, when the pool can take no job", async () => {
    const m = new MemoryImage({ sizeBytes: 2 * DIGEST_BLOCK_BYTES, fill: "pattern" });
    // A real pool of no workers.
    const workers = startWorkers(m, 0);
    const digests = new BlockDigests(m, () => workers);
    try {
      const err = await rejection(digests.digest(), DigestClosed);
      expect(err.message).toBe("block 0 stayed unhashed");
    } finally {
      digests.close();
      await (await workers)?.close();
    }
  });
});
