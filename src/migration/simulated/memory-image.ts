/**
 * The guest memory of a simulated VM: `pageCount` pages of `pageSize` bytes,
 * held once, in chunks of at most 256 MiB (so several GiB work on any Node
 * version), with a dirty bitmap (one byte per page) the pre-copy transfer
 * reads and clears.
 *
 * @module
 */
import { createHash, randomFillSync } from "node:crypto";

const MAX_CHUNK_BYTES = 256 * 1024 * 1024;

/** The size and content of a {@link MemoryImage}. */
export interface MemoryImageOptions {
  /** Total size in bytes, a multiple of `pageSize`. */
  readonly sizeBytes: number;
  /** Bytes per page, a power of two from 512 to 2^30. Default 4096. */
  readonly pageSize?: number;
  /**
   * Initial content: "zero" (a VM not started yet, the destination) or
   * "pattern" (a running guest: pseudo-random bytes, every page different).
   * Default "zero".
   */
  readonly fill?: "zero" | "pattern";
}

/** A simulated VM's guest memory: pages and a dirty bitmap the pre-copy transfer reads and clears. */
export class MemoryImage {
  readonly sizeBytes: number;
  readonly pageSize: number;
  readonly pageCount: number;
  readonly #chunks: Buffer[] = [];
  readonly #pagesPerChunk: number;
  readonly #dirty: Uint8Array;
  #dirtyCount = 0;

  constructor(options: MemoryImageOptions) {
    const pageSize = options.pageSize ?? 4096;
    if (!Number.isInteger(pageSize) || pageSize < 512 || pageSize > 2 ** 30 || (pageSize & (pageSize - 1)) !== 0) {
      throw new RangeError(`page size ${pageSize} is not a power of two from 512 to 2^30`);
    }
    const sizeBytes = options.sizeBytes;
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % pageSize !== 0) {
      throw new RangeError(`memory size ${sizeBytes} is not a positive multiple of the page size ${pageSize}`);
    }
    this.sizeBytes = sizeBytes;
    this.pageSize = pageSize;
    this.pageCount = sizeBytes / pageSize;
    if (this.pageCount > 2 ** 32 - 1) throw new RangeError(`memory size ${sizeBytes} has more than 2^32-1 pages`);
    this.#pagesPerChunk = Math.max(1, Math.floor(MAX_CHUNK_BYTES / pageSize));
    for (let left = this.pageCount; left > 0; left -= this.#pagesPerChunk) {
      this.#chunks.push(Buffer.alloc(Math.min(left, this.#pagesPerChunk) * pageSize));
    }
    this.#dirty = new Uint8Array(this.pageCount);
    if (options.fill === "pattern") this.#fillPattern();
    // Touch every page now (as a hypervisor backs guest RAM when it creates
    // the VM), not on the first write during the transfer.
    else for (const chunk of this.#chunks) chunk.fill(0);
  }

  // Pseudo-random content without generating GiBs of randomness: one random
  // MiB repeated, each page stamped with its index.
  #fillPattern(): void {
    const seed = randomFillSync(Buffer.allocUnsafe(Math.min(1 << 20, this.#chunks[0]!.length)));
    for (const chunk of this.#chunks) {
      for (let off = 0; off < chunk.length; off += seed.length)
        seed.copy(chunk, off, 0, Math.min(seed.length, chunk.length - off));
    }
    for (let i = 0; i < this.pageCount; i++) this.page(i).writeUInt32LE(i, 0);
  }

  /** The page's bytes (a view, not a copy). */
  page(index: number): Buffer {
    const chunk = this.#chunks[Math.floor(index / this.#pagesPerChunk)];
    if (chunk === undefined || index < 0 || !Number.isInteger(index))
      throw new RangeError(`page ${index} out of range`);
    const off = (index % this.#pagesPerChunk) * this.pageSize;
    return chunk.subarray(off, off + this.pageSize);
  }

  /**
   * Copies `data` (one page) into page `index`. Does not mark it dirty (the
   * destination's writes come from the wire).
   */
  writePage(index: number, data: Uint8Array): void {
    if (data.length !== this.pageSize)
      throw new RangeError(`page data is ${data.length} bytes, expected ${this.pageSize}`);
    this.page(index).set(data);
  }

  /** Marks a page written by the guest. */
  markDirty(index: number): void {
    if (this.#dirty[index] === 0) {
      this.#dirty[index] = 1;
      this.#dirtyCount++;
    }
  }

  /** Marks every page dirty (the first pre-copy pass sends them all). */
  markAllDirty(): void {
    this.#dirty.fill(1);
    this.#dirtyCount = this.pageCount;
  }

  /** Pages dirtied since the last {@link takeDirty}. */
  get dirtyCount(): number {
    return this.#dirtyCount;
  }

  /** The dirty pages, in index order; the bitmap is cleared. */
  takeDirty(): Uint32Array {
    const out = new Uint32Array(this.#dirtyCount);
    let n = 0;
    if (this.#dirtyCount > 0) {
      const bits = this.#dirty;
      for (let i = 0; i < bits.length; i++) if (bits[i] !== 0) out[n++] = i;
      bits.fill(0);
    }
    this.#dirtyCount = 0;
    return n === out.length ? out : out.subarray(0, n);
  }

  /** SHA-256 of the whole image, hex. */
  digest(): string {
    const h = createHash("sha256");
    for (const chunk of this.#chunks) h.update(chunk);
    return h.digest("hex");
  }

  /** True when both images have the same layout and bytes. */
  equals(other: MemoryImage): boolean {
    if (other.sizeBytes !== this.sizeBytes || other.pageSize !== this.pageSize) return false;
    return this.#chunks.every((c, i) => c.equals(other.#chunks[i]!));
  }
}
