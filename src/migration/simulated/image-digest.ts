/**
 * The digest both sides compare at the end of a transfer: SHA-256 over the
 * SHA-256 of every 256 KiB block of the image (one page when pages are
 * bigger), in order (the last block may be shorter). Blocks are
 * independent, so several cores hash them, and a transfer keeps them up to
 * date as it goes (see block-digests.ts); a block the image knows to be all
 * zero is not read, its hash is that of zero bytes (small blocks: a guest's
 * untouched regions are skipped).
 *
 * @module
 */
import { createHash } from "node:crypto";

/** The image digest hashes the guest memory in blocks this big (known-zero blocks are not read). */
export const DIGEST_BLOCK_BYTES = 256 * 1024;

/**
 * What the digest reads of a guest's memory (a `MemoryImage` is one): named
 * here so the image can use the digest without the two importing each other.
 */
export interface DigestedMemory {
  readonly pageCount: number;
  /** Pages per digest block. */
  readonly blockPages: number;
  readonly blockCount: number;
  readonly chunks: readonly SharedArrayBuffer[];
  /** `[chunk, start, end]` byte ranges of pages `first .. first+count`. */
  byteRanges(first: number, count: number): [number, number, number][];
  /** The pages are known to be all zero (never written, or zeroed), so need not be read. */
  knownZero(first: number, count: number): boolean;
}

export interface DigestBlock {
  /** Index into the image's chunks. */
  readonly chunk: number;
  /** Byte range inside the chunk. */
  readonly start: number;
  readonly end: number;
  /** The block's pages. */
  readonly first: number;
  readonly count: number;
}

/** Digest block `b` of the image. */
export function digestBlock(memory: DigestedMemory, b: number): DigestBlock {
  const first = b * memory.blockPages;
  const count = Math.min(memory.blockPages, memory.pageCount - first);
  // Blocks never straddle chunks: chunk sizes are multiples of the block size (or smaller than one).
  const [[chunk, start, end]] = memory.byteRanges(first, count) as [[number, number, number]];
  return { chunk, start, end, first, count };
}

/** SHA-256 of one block, on this thread (a known-zero block is not read). */
export function blockHash(memory: DigestedMemory, b: DigestBlock): Buffer {
  return memory.knownZero(b.first, b.count)
    ? zeroBlockHash(b.end - b.start)
    : createHash("sha256")
        .update(new Uint8Array(memory.chunks[b.chunk]!, b.start, b.end - b.start))
        .digest();
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

/** The image digest, on this thread: SHA-256 over every block's SHA-256, in order. */
export function imageDigest(memory: DigestedMemory): string {
  const h = createHash("sha256");
  for (let b = 0; b < memory.blockCount; b++) h.update(blockHash(memory, digestBlock(memory, b)));
  return h.digest("hex");
}
