/**
 * The digest both sides compare at the end of a transfer: SHA-256 over the
 * SHA-256 of every 16 MiB block of the image, in order (the last block may
 * be shorter). Blocks are independent, so several cores can hash them
 * (see page-workers.ts); a block the image knows to be all zero is not
 * read, its hash is that of zero bytes.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { MemoryImage } from "./memory-image.js";
import type { PageWorkers } from "./page-workers.js";

export const DIGEST_BLOCK_BYTES = 16 * 1024 * 1024;

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
  const hashes = await Promise.all(
    digestBlocks(memory).map((b) =>
      b.zero ? zeroBlockHash(b.end - b.start) : workers.run({ op: "hash", chunk: b.chunk, start: b.start, end: b.end }),
    ),
  );
  return combineBlockHashes(hashes);
}

/** The image digest, on the workers when there are some. */
export function digestOf(memory: MemoryImage, workers: Promise<PageWorkers | undefined>): Promise<string> {
  return workers.then((w) => (w === undefined ? memory.digest() : imageDigestOn(memory, w)));
}
