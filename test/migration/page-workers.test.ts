// The page worker pool: jobs go to the least busy worker, a decompressed run
// whose checksum does not match names the page, and closing the pool stops
// its threads and fails what is still running or asked of it afterwards.
// Real worker threads over a small memory image. Which worker took a job is
// seen through a pass-through spy on node:worker_threads' Worker.postMessage:
// the pool has no other way to show it, and the workers are identical.
import { createHash } from "node:crypto";
import { Worker } from "node:worker_threads";
import { crc32, deflateRawSync } from "node:zlib";
import { afterEach, describe, expect, it, vi } from "vitest";
import { MemoryImage } from "../../src/migration/simulated/memory-image.js";
import { PageMismatch, PageWorkers } from "../../src/migration/simulated/page-workers.js";

const PAGE = 512;

function image(pages: number): MemoryImage {
  return new MemoryImage({ sizeBytes: pages * PAGE, pageSize: PAGE, fill: "pattern" });
}

/** A hash job over the first page: cheap, and its answer is known. */
const HASH = { op: "hash", chunk: 0, start: 0, end: PAGE, block: PAGE } as const;

/** A promise's outcome as a value: "resolved", or the error it rejected with. */
function outcome(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => "resolved",
    (err: unknown) => err,
  );
}

/** `seen` (an {@link outcome}) now, or "pending": one already settled wins the race, its reaction queued first. */
function now(seen: Promise<unknown>): Promise<unknown> {
  return Promise.race([seen, Promise.resolve("pending")]);
}

let pool: PageWorkers | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  await pool?.close();
  pool = undefined;
});

describe("page workers", () => {
  it("hash a page as SHA-256 on another thread", async () => {
    const m = image(4);
    pool = await PageWorkers.start(m, 1);
    const out = await pool.run(HASH);
    expect(Buffer.from(out).toString("hex")).toBe(createHash("sha256").update(m.page(0)).digest("hex"));
  });

  it("give each job to the least busy worker, the first on a tie", async () => {
    const posted = vi.spyOn(Worker.prototype, "postMessage");
    pool = await PageWorkers.start(image(4), 2);
    // Alone: the first worker; once answered it is idle again.
    await pool.run(HASH);
    // Two at once: one each, the first worker first.
    await Promise.all([pool.run(HASH), pool.run(HASH)]);
    const threads = posted.mock.contexts.map((w) => (w as Worker).threadId);
    // Threads are numbered as they are made: the pool's first worker has the lowest.
    const order = [...new Set(threads)].sort((a, b) => a - b);
    expect(threads.map((t) => order.indexOf(t))).toEqual([0, 0, 1]);
  });

  it("reject an inflated run whose checksum does not match, naming the page, and leave memory alone", async () => {
    const m = image(3);
    const before = Buffer.from(m.views(0, 3)[0]!);
    const pages = Buffer.alloc(3 * PAGE, 0x5a);
    pages[PAGE + 7] = 1;
    const sums = Buffer.alloc(12);
    for (let k = 0; k < 3; k++) sums.writeUInt32BE(crc32(pages.subarray(k * PAGE, (k + 1) * PAGE)), 4 * k);
    sums.writeUInt32BE(sums.readUInt32BE(4) ^ 1, 4);
    pool = await PageWorkers.start(m, 1);
    const data = new Uint8Array(deflateRawSync(pages));
    const job = { op: "inflate", targets: m.byteRanges(0, 3), pageSize: PAGE, data, sums } as const;
    const err = await pool.run(job, []).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PageMismatch);
    expect(err).toMatchObject({ pageOffset: 1, message: "checksum mismatch at page 1 of the run" });
    expect(m.views(0, 3)[0]!.equals(before)).toBe(true);
  });

  it("when closed, fail the jobs still running and every job asked after, and stop the threads", async () => {
    const posted = vi.spyOn(Worker.prototype, "postMessage");
    pool = await PageWorkers.start(image(4), 2);
    const running = outcome(pool.run(HASH));
    // The worker cannot answer before the event loop turns: the job is still running.
    await pool.close();
    const failed = await now(running);
    expect(failed).toBeInstanceOf(Error);
    expect((failed as Error).message).toBe("page workers closed");
    await expect(pool.run(HASH)).rejects.toThrow(new Error("page workers closed"));
    // A second close is a no-op.
    await pool.close();
    const worker = posted.mock.contexts[0] as Worker;
    expect(worker.threadId).toBe(-1);
  });
});
