/**
 * The digest both sides compare at the end of a transfer: SHA-256 over the
 * SHA-256 of every 256 KiB block of the image (one page when pages are
 * bigger), in order (the last block may be shorter). Blocks are
 * independent, so several cores hash them (see page-workers.ts, up to 64
 * blocks a job); a block the image knows to be all zero is not read, its
 * hash is that of zero bytes (small blocks: a guest's untouched regions are
 * skipped).
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { MemoryImage } from "./memory-image.js";
import type { PageWorkers } from "./page-workers.js";

/** The image digest hashes the guest memory in blocks this big (known-zero blocks are not read). */
export const DIGEST_BLOCK_BYTES = 256 * 1024;
/** Blocks a worker hashes per job at most (16 MiB). */
const BLOCKS_PER_JOB = 64;

export interface DigestBlock {
  /** Index into the image's chunks. */
  readonly chunk: number;
  /** Byte range inside the chunk. */
  readonly start: number;
  readonly end: number;
  /** Every page of the block is known zero. */
  readonly zero: boolean;
}

/** The image's digest blocks, in order. */
export function digestBlocks(memory: MemoryImage): DigestBlock[] {
  const blocks: DigestBlock[] = [];
  const chunkBytes = memory.pagesPerChunk * memory.pageSize;
  const blockPages = Math.max(1, DIGEST_BLOCK_BYTES / memory.pageSize);
  for (let first = 0; first < memory.pageCount; first += blockPages) {
    const count = Math.min(blockPages, memory.pageCount - first);
    const chunk = Math.floor(first / memory.pagesPerChunk);
    const start = first * memory.pageSize - chunk * chunkBytes;
    // Blocks never straddle chunks: chunk sizes are multiples of the block size (or smaller than one).
    const end = Math.min(start + count * memory.pageSize, chunkBytes);
    blocks.push({ chunk, start, end, zero: memory.knownZero(first, count) });
  }
  return blocks;
}

const zeroHashes = new Map<number, Buffer>();

/** SHA-256 of `length` zero bytes (cached). */
export function zeroBlockHash(length: number): Buffer {
  let h = zeroHashes.get(length);
  if (h === undefined) {
    h = createHash("sha256").update(Buffer.alloc(length)).digest();
    zeroHashes.set(length, h);
  }
  return h;
}

/** Combines the block hashes, in order, into the image digest (hex). */
export function combineBlockHashes(hashes: readonly Uint8Array[]): string {
  const h = createHash("sha256");
  for (const b of hashes) h.update(b);
  return h.digest("hex");
}

/** The image digest, on this thread. */
export function imageDigest(memory: MemoryImage): string {
  const chunks = memory.chunks;
  return combineBlockHashes(
    digestBlocks(memory).map((b) =>
      b.zero
        ? zeroBlockHash(b.end - b.start)
        : createHash("sha256")
            .update(new Uint8Array(chunks[b.chunk]!, b.start, b.end - b.start))
            .digest(),
    ),
  );
}

/** The image digest, its blocks hashed by the workers in parallel. */
export async function imageDigestOn(memory: MemoryImage, workers: PageWorkers): Promise<string> {
  const blocks = digestBlocks(memory);
  const hashes: (Uint8Array | Promise<Uint8Array>)[] = [];
  // Consecutive blocks of one chunk that need reading make one job; its answer is their hashes, in order.
  for (let i = 0; i < blocks.length; ) {
    const b = blocks[i]!;
    if (b.zero) {
      hashes.push(zeroBlockHash(b.end - b.start));
      i++;
      continue;
    }
    let j = i + 1;
    while (j < blocks.length && j - i < BLOCKS_PER_JOB && !blocks[j]!.zero && blocks[j]!.chunk === b.chunk) j++;
    const job = workers.run({
      op: "hash",
      chunk: b.chunk,
      start: b.start,
      end: blocks[j - 1]!.end,
      block: b.end - b.start,
    });
    for (let k = 0; k < j - i; k++) hashes.push(job.then((all) => all.subarray(32 * k, 32 * (k + 1))));
    i = j;
  }
  return combineBlockHashes(await Promise.all(hashes));
}

/** The image digest, on the workers when there are some. */
export function digestOf(memory: MemoryImage, workers: Promise<PageWorkers | undefined>): Promise<string> {
  return workers.then((w) => (w === undefined ? memory.digest() : imageDigestOn(memory, w)));
}
