/**
 * The guest memory of a simulated VM: `pageCount` pages of `pageSize` bytes,
 * held once, in chunks of at most 256 MiB (so several GiB work on any Node
 * version), with a dirty bitmap (one byte per page) the pre-copy transfer
 * reads and clears.
 *
 * The chunks are SharedArrayBuffers so the digest workers (see
 * page-workers.ts) read them in place, on other cores.
 *
 * A second bitmap knows which pages may hold non-zero bytes: a page never
 * written since the image was made zeroed is known zero without reading it,
 * as a hypervisor knows the guest pages it never backed. The transfer sends
 * zero pages as markers and the destination skips zeroing a page it never wrote.
 *
 * Every write the image is told of (a guest write, a page from the wire, a
 * zeroing) also bumps a counter of the digest block it falls in, after the
 * bytes are in place: a block hash taken at one count is the block's hash
 * as long as the count has not moved (see block-digests.ts).
 *
 * @module
 */
import { randomFillSync } from "node:crypto";
import { DIGEST_BLOCK_BYTES, imageDigest } from "./image-digest.js";

const MAX_CHUNK_BYTES = 256 * 1024 * 1024;
/** Pages of a zero-heavy fill are zero (or not) in groups this big, as guests leave whole regions untouched. */
const FILL_GROUP_PAGES = 64;

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
  /**
   * With "pattern": the fraction (0 … 1) of pages left zero, in groups of 64
   * pages spread over the image (a guest that has touched little of its
   * memory). Default 0 (a dense guest).
   */
  readonly zeroFraction?: number;
}

/** A simulated VM's guest memory: pages and a dirty bitmap the pre-copy transfer reads and clears. */
export class MemoryImage {
  readonly sizeBytes: number;
  readonly pageSize: number;
  readonly pageCount: number;
  /** Pages per chunk: a run of pages inside one chunk is one contiguous view. */
  readonly pagesPerChunk: number;
  readonly #chunks: Buffer[] = [];
  /** The chunks as 32-bit words (page sizes are multiples of 4). */
  readonly #words: Uint32Array[] = [];
  readonly #dirty: Uint8Array;
  /** 1 where the page may hold non-zero bytes; 0 means known zero. */
  readonly #written: Uint8Array;
  #dirtyCount = 0;
  /** Pages per digest block (see image-digest.ts). */
  readonly blockPages: number;
  /** Per digest block: writes recorded so far (a float: never wraps). */
  readonly #blockWrites: Float64Array;

  constructor(options: MemoryImageOptions) {
    const pageSize = options.pageSize ?? 4096;
    if (!Number.isInteger(pageSize) || pageSize < 512 || pageSize > 2 ** 30 || (pageSize & (pageSize - 1)) !== 0) {
      throw new RangeError(`page size ${pageSize} is not a power of two from 512 to 2^30`);
    }
    const sizeBytes = options.sizeBytes;
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % pageSize !== 0) {
      throw new RangeError(`memory size ${sizeBytes} is not a positive multiple of the page size ${pageSize}`);
    }
    const zeroFraction = options.zeroFraction ?? 0;
    if (!(zeroFraction >= 0 && zeroFraction <= 1))
      throw new RangeError(`zero fraction ${zeroFraction} is not in 0 … 1`);
    this.sizeBytes = sizeBytes;
    this.pageSize = pageSize;
    this.pageCount = sizeBytes / pageSize;
    if (this.pageCount > 2 ** 32 - 1) throw new RangeError(`memory size ${sizeBytes} has more than 2^32-1 pages`);
    this.pagesPerChunk = Math.max(1, Math.floor(MAX_CHUNK_BYTES / pageSize));
    for (let left = this.pageCount; left > 0; left -= this.pagesPerChunk) {
      const shared = new SharedArrayBuffer(Math.min(left, this.pagesPerChunk) * pageSize);
      this.#chunks.push(Buffer.from(shared));
      this.#words.push(new Uint32Array(shared));
    }
    this.#dirty = new Uint8Array(this.pageCount);
    this.#written = new Uint8Array(this.pageCount);
    this.blockPages = Math.max(1, DIGEST_BLOCK_BYTES / pageSize);
    this.#blockWrites = new Float64Array(Math.ceil(this.pageCount / this.blockPages));
    if (options.fill === "pattern") this.#fillPattern(zeroFraction);
    // Touch every page now (as a hypervisor backs guest RAM when it creates
    // the VM), not on the first write during the transfer.
    else for (const chunk of this.#chunks) chunk.fill(0);
  }

  // Pseudo-random content without generating GiBs of randomness: one random
  // MiB repeated, each page stamped with its index. Four random bits a byte:
  // like real guest memory, it compresses (about 2:1 with deflate).
  #fillPattern(zeroFraction: number): void {
    const seed = randomFillSync(Buffer.allocUnsafe(Math.min(1 << 20, this.#chunks[0]!.length)));
    for (let i = 0; i < seed.length; i++) seed[i]! &= 0x0f;
    for (const chunk of this.#chunks) {
      for (let off = 0; off < chunk.length; off += seed.length)
        seed.copy(chunk, off, 0, Math.min(seed.length, chunk.length - off));
    }
    this.#written.fill(1);
    for (let i = 0; i < this.pageCount; i++) this.page(i).writeUInt32LE(i, 0);
    if (zeroFraction === 0) return;
    const threshold = Math.round(zeroFraction * 1000);
    for (let first = 0; first < this.pageCount; first += FILL_GROUP_PAGES) {
      // A multiplicative hash of the group spreads the zero groups evenly.
      if (Math.imul(first / FILL_GROUP_PAGES + 1, 0x9e3779b1) >>> 0 < threshold * 4294967.296) {
        const count = Math.min(FILL_GROUP_PAGES, this.pageCount - first);
        for (const view of this.views(first, count)) view.fill(0);
        this.#written.fill(0, first, first + count);
      }
    }
  }

  /** The shared buffers behind the image, in order (for workers). */
  get chunks(): readonly SharedArrayBuffer[] {
    return this.#chunks.map((c) => c.buffer as SharedArrayBuffer);
  }

  /** The page's bytes (a view, not a copy). */
  page(index: number): Buffer {
    this.#checkPage(index);
    const chunk = this.#chunks[Math.floor(index / this.pagesPerChunk)]!;
    const off = (index % this.pagesPerChunk) * this.pageSize;
    return chunk.subarray(off, off + this.pageSize);
  }

  // The last chunk may hold fewer pages than it has room for: the page count bounds an index, not the chunks.
  #checkPage(index: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.pageCount)
      throw new RangeError(`page ${index} out of range`);
  }

  #checkRange(first: number, count: number): void {
    const valid = Number.isInteger(first) && Number.isInteger(count) && first >= 0 && count >= 0;
    if (!valid || first + count > this.pageCount) {
      throw new RangeError(`pages ${first} … ${first + count - 1} out of range`);
    }
  }

  /** Where pages `first … first+count-1` are: [chunk, start byte, end byte] per chunk they touch, in order. */
  byteRanges(first: number, count: number): [number, number, number][] {
    this.#checkRange(first, count);
    const out: [number, number, number][] = [];
    for (let i = first, end = first + count; i < end; ) {
      const c = Math.floor(i / this.pagesPerChunk);
      const stop = Math.min(end, (c + 1) * this.pagesPerChunk);
      const off = (i - c * this.pagesPerChunk) * this.pageSize;
      out.push([c, off, off + (stop - i) * this.pageSize]);
      i = stop;
    }
    return out;
  }

  /** Views of pages `first … first+count-1` (one per chunk they touch, in order). */
  views(first: number, count: number): Buffer[] {
    return this.byteRanges(first, count).map(([c, start, end]) => this.#chunks[c]!.subarray(start, end));
  }

  /** True when the page is all zero bytes (known without reading it when never written). */
  isZero(index: number): boolean {
    if (this.#written[index] === 0) return true;
    this.#checkPage(index);
    // Word by word over the chunk, not through page(): the first pass asks
    // this of every page, and a view per page is garbage the blackout pays for.
    const c = Math.floor(index / this.pagesPerChunk);
    const words = this.#words[c]!;
    const start = ((index - c * this.pagesPerChunk) * this.pageSize) >>> 2;
    for (let w = start, end = start + (this.pageSize >>> 2); w < end; w++) if (words[w] !== 0) return false;
    return true;
  }

  /**
   * Copies `data` (one page) into page `index`. Does not mark it dirty (the
   * destination's writes come from the wire).
   */
  writePage(index: number, data: Uint8Array): void {
    if (data.length !== this.pageSize)
      throw new RangeError(`page data is ${data.length} bytes, expected ${this.pageSize}`);
    this.page(index).set(data);
    this.#written[index] = 1;
    this.#wrote(index, 1);
  }

  /** Records that pages `first … first+count-1` were written in place (through {@link views}). */
  markWritten(first: number, count: number): void {
    this.#written.fill(1, first, first + count);
    this.#wrote(first, count);
  }

  // Called after the bytes are in place (a hash taken before sees an older count).
  #wrote(first: number, count: number): void {
    if (count <= 0) return;
    const last = Math.floor((first + count - 1) / this.blockPages);
    for (let b = Math.floor(first / this.blockPages); b <= last; b++) this.#blockWrites[b]!++;
  }

  /** Digest blocks of the image. */
  get blockCount(): number {
    return this.#blockWrites.length;
  }

  /** Writes recorded in digest block `block` so far: equal counts, equal bytes. */
  blockWrites(block: number): number {
    return this.#blockWrites[block]!;
  }

  /** Makes pages `first … first+count-1` zero; pages never written are left alone. */
  zeroPages(first: number, count: number): void {
    this.#checkRange(first, count);
    const w = this.#written;
    for (let i = first, end = first + count; i < end; i++) {
      if (w[i] === 0) continue;
      this.page(i).fill(0);
      w[i] = 0;
    }
    this.#wrote(first, count);
  }

  /** Marks a page written by the guest. */
  markDirty(index: number): void {
    this.#written[index] = 1;
    this.#wrote(index, 1);
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

  /** True when no page in `first … first+count-1` may hold a non-zero byte. */
  knownZero(first: number, count: number): boolean {
    const w = this.#written;
    for (let i = first, end = first + count; i < end; i++) if (w[i] !== 0) return false;
    return true;
  }

  /** The digest both sides of a transfer compare (see image-digest.ts), hex. */
  digest(): string {
    return imageDigest(this);
  }

  /** True when both images have the same layout and bytes. */
  equals(other: MemoryImage): boolean {
    if (other.sizeBytes !== this.sizeBytes || other.pageSize !== this.pageSize) return false;
    return this.#chunks.every((c, i) => c.equals(other.#chunks[i]!));
  }
}
