// The simulated VM's guest memory (memory-image.ts): the shape it accepts,
// the content it starts with, where its pages are, which pages it knows to
// be zero, the dirty bitmap the pre-copy passes take, and the per-block
// write counts the running digest relies on.
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { MemoryImage } from "../../src/migration/simulated/memory-image.js";
import { thrown } from "../common.js";

const KiB = 1024;
const MiB = 1024 * KiB;

describe("memory image shape", () => {
  it("refuses page sizes that are not a power of two from 512 to 2^30", () => {
    const message = (ps: number) => `page size ${ps} is not a power of two from 512 to 2^30`;
    // Each size below is refused by exactly one of the four conditions; the
    // memory size is a valid multiple, so a missing check would accept it.
    expect(thrown(() => new MemoryImage({ pageSize: 256, sizeBytes: 256 * 4 }), RangeError).message).toBe(message(256));
    expect(thrown(() => new MemoryImage({ pageSize: 3072, sizeBytes: 3072 * 2 }), RangeError).message).toBe(
      message(3072),
    );
    // 4096.5 passes the power-of-two bit test (the & truncates it): only the integer check refuses it.
    expect(thrown(() => new MemoryImage({ pageSize: 4096.5, sizeBytes: 8193 }), RangeError).message).toBe(
      message(4096.5),
    );
    // Too big: the memory size is not a multiple either, so a missed page-size
    // check shows as the other message, not as a 2 GiB allocation.
    expect(thrown(() => new MemoryImage({ pageSize: 2 ** 31, sizeBytes: 4096 }), RangeError).message).toBe(
      message(2 ** 31),
    );
  });

  it("accepts the bounds 512 and 2^30 (the memory size is checked next)", () => {
    // An accepted page size gets as far as the memory-size check: its message proves the page size passed.
    expect(thrown(() => new MemoryImage({ pageSize: 2 ** 30, sizeBytes: 512 }), RangeError).message).toBe(
      `memory size 512 is not a positive multiple of the page size ${2 ** 30}`,
    );
    expect(thrown(() => new MemoryImage({ pageSize: 512, sizeBytes: 100 }), RangeError).message).toBe(
      "memory size 100 is not a positive multiple of the page size 512",
    );
    const m = new MemoryImage({ pageSize: 512, sizeBytes: 2048 });
    expect([m.pageSize, m.pageCount]).toEqual([512, 4]);
  });

  it("refuses a memory size that is not a positive whole multiple of the page size", () => {
    const message = (size: number) => `memory size ${size} is not a positive multiple of the page size 4096`;
    expect(thrown(() => new MemoryImage({ sizeBytes: 0 }), RangeError).message).toBe(message(0));
    expect(thrown(() => new MemoryImage({ sizeBytes: -4096 }), RangeError).message).toBe(message(-4096));
    expect(thrown(() => new MemoryImage({ sizeBytes: 6144 }), RangeError).message).toBe(message(6144));
    // A multiple of the page size, but not a safe integer.
    expect(thrown(() => new MemoryImage({ sizeBytes: 2 ** 54 }), RangeError).message).toBe(message(2 ** 54));
  });

  it("refuses more than 2^32-1 pages before allocating anything", () => {
    expect(thrown(() => new MemoryImage({ pageSize: 512, sizeBytes: 2 ** 42 }), RangeError).message).toBe(
      `memory size ${2 ** 42} has more than 2^32-1 pages`,
    );
  });

  it("refuses a zero fraction outside 0 … 1 and accepts both ends", () => {
    for (const zf of [-0.1, 1.1, Number.NaN]) {
      expect(
        thrown(() => new MemoryImage({ sizeBytes: 64 * KiB, fill: "pattern", zeroFraction: zf }), RangeError).message,
      ).toBe(`zero fraction ${zf} is not in 0 … 1`);
    }
    const none = new MemoryImage({ sizeBytes: 64 * KiB, fill: "pattern", zeroFraction: 0 });
    expect(none.knownZero(0, none.pageCount)).toBe(false);
    const all = new MemoryImage({ sizeBytes: 64 * KiB, fill: "pattern", zeroFraction: 1 });
    expect(all.knownZero(0, all.pageCount)).toBe(true);
  });

  it("cuts the image into chunks of 256 MiB, and one digest block is 256 KiB", () => {
    const m = new MemoryImage({ sizeBytes: MiB });
    expect(m.pagesPerChunk).toBe(65536);
    expect(m.chunks).toHaveLength(1);
    expect(m.chunks[0]!.byteLength).toBe(MiB);
    expect([m.blockPages, m.blockCount]).toEqual([64, 4]);
  });
});

describe("memory image content", () => {
  it("starts zero and known zero with the zero fill", () => {
    const m = new MemoryImage({ sizeBytes: 16 * KiB });
    expect(m.knownZero(0, m.pageCount)).toBe(true);
    expect(Buffer.from(m.chunks[0]!).equals(Buffer.alloc(16 * KiB))).toBe(true);
    for (let i = 0; i < m.pageCount; i++) expect(m.isZero(i)).toBe(true);
  });

  it("fills a pattern of four random bits a byte, each page stamped with its index", () => {
    const m = new MemoryImage({ pageSize: 512, sizeBytes: 64 * KiB, fill: "pattern" });
    let nonZero = 0;
    for (let i = 0; i < m.pageCount; i++) {
      const page = m.page(i);
      expect(page.readUInt32LE(0)).toBe(i);
      // Past the stamp: low nibbles only (about 2:1 compressible, like guest memory), not all zero.
      const rest = page.subarray(4);
      expect(rest.every((x) => x < 16)).toBe(true);
      nonZero += rest.filter((x) => x !== 0).length;
      expect(m.isZero(i)).toBe(false);
    }
    // Four random bits: a fifteenth of the bytes are zero, not most of them.
    expect(nonZero).toBeGreaterThan(m.pageCount * 400);
    expect(m.knownZero(0, m.pageCount)).toBe(false);
  });

  it("fills past the first random MiB, repeating it", () => {
    const m = new MemoryImage({ sizeBytes: MiB + 512 * KiB, fill: "pattern" });
    // Page 256 + 44 is page 44 of the second MiB: the same bytes as page 44 but its stamp.
    expect(
      m
        .page(256 + 44)
        .subarray(4)
        .equals(m.page(44).subarray(4)),
    ).toBe(true);
    for (let i = 256; i < m.pageCount; i++) {
      const rest = m.page(i).subarray(4);
      expect(rest.every((x) => x < 16)).toBe(true);
      expect(rest.some((x) => x !== 0)).toBe(true);
    }
  });

  it("leaves zero groups of 64 pages where a fixed hash of the group says, known zero", () => {
    // 16 groups; the layout is deterministic, so source and tests agree on it.
    const m = new MemoryImage({ pageSize: 512, sizeBytes: 16 * 64 * 512, fill: "pattern", zeroFraction: 0.5 });
    const zeroGroups = [];
    for (let g = 0; g < 16; g++) {
      const known = m.knownZero(g * 64, 64);
      const bytesZero = m.views(g * 64, 64).every((v) => v.every((x) => x === 0));
      expect(bytesZero).toBe(known);
      if (known) zeroGroups.push(g);
    }
    expect(zeroGroups).toEqual([1, 3, 4, 6, 9, 11, 12, 14]);
  });

  it("zeroes a last group shorter than 64 pages", () => {
    const m = new MemoryImage({ pageSize: 512, sizeBytes: 100 * 512, fill: "pattern", zeroFraction: 1 });
    expect(m.knownZero(0, 100)).toBe(true);
    expect(m.views(0, 100)[0]!.every((x) => x === 0)).toBe(true);
  });
});

describe("memory image pages", () => {
  it("gives page views into the image and refuses indexes that are not pages", () => {
    const m = new MemoryImage({ sizeBytes: 16 * KiB });
    m.page(2)[7] = 9;
    expect(Buffer.from(m.chunks[0]!)[2 * 4096 + 7]).toBe(9);
    expect(m.page(3)).toHaveLength(4096);
    // 4 and 5 lie inside the chunk's room but past the image's last page.
    for (const bad of [1.5, -1, 4, 5, 10 ** 9]) {
      expect(thrown(() => m.page(bad), RangeError).message).toBe(`page ${bad} out of range`);
    }
  });

  it("locates page ranges and refuses ranges outside the image", () => {
    const m = new MemoryImage({ sizeBytes: 16 * KiB });
    expect(m.byteRanges(1, 2)).toEqual([[0, 4096, 3 * 4096]]);
    expect(m.byteRanges(4, 0)).toEqual([]);
    expect(m.byteRanges(0, 0)).toEqual([]);
    expect(m.views(3, 1)[0]!.byteOffset).toBe(3 * 4096);
    const cases: [number, number][] = [
      [0.5, 1],
      [0, 1.5],
      [-1, 2],
      [2, -1],
      [3, 2],
      [4, 1],
    ];
    for (const [first, count] of cases) {
      expect(thrown(() => m.byteRanges(first, count), RangeError).message).toBe(
        `pages ${first} … ${first + count - 1} out of range`,
      );
      expect(() => m.views(first, count)).toThrow(RangeError);
      expect(() => m.zeroPages(first, count)).toThrow(RangeError);
    }
  });

  it("isZero reads a written page, trusts the bitmap for a page never written, and refuses a non-page", () => {
    const m = new MemoryImage({ sizeBytes: 16 * KiB });
    // Bytes changed without telling the image: it still knows the page as never written.
    // The transfer relies on that to skip reading untouched guest memory.
    m.page(1)[100] = 1;
    expect(m.isZero(1)).toBe(true);
    m.markWritten(1, 1);
    expect(m.isZero(1)).toBe(false);
    m.writePage(2, Buffer.alloc(4096));
    expect(m.isZero(2)).toBe(true);
    const last = Buffer.alloc(4096);
    last[4095] = 1;
    m.writePage(3, last);
    expect(m.isZero(3)).toBe(false);
    m.markWritten(0, 4);
    for (const bad of [1.5, -1, 4, 5, 10 ** 9]) {
      expect(thrown(() => m.isZero(bad), RangeError).message).toBe(`page ${bad} out of range`);
    }
  });

  it("writePage copies exactly one page and refuses other lengths", () => {
    const m = new MemoryImage({ sizeBytes: 16 * KiB });
    expect(thrown(() => m.writePage(0, Buffer.alloc(10, 1)), RangeError).message).toBe(
      "page data is 10 bytes, expected 4096",
    );
    expect(m.page(0).every((x) => x === 0)).toBe(true);
    expect(m.knownZero(0, 1)).toBe(true);
    m.writePage(0, Buffer.alloc(4096, 7));
    expect(m.page(0).every((x) => x === 7)).toBe(true);
    expect(m.knownZero(0, 1)).toBe(false);
    // A write from the wire is not a guest write: not dirty.
    expect(m.dirtyCount).toBe(0);
  });

  it("zeroPages zeroes written pages, leaves pages never written alone, and counts the write", () => {
    const m = new MemoryImage({ sizeBytes: 16 * KiB });
    m.writePage(0, Buffer.alloc(4096, 5));
    // Bytes behind the image's back on a never-written page: documented as left alone.
    m.page(2)[0] = 3;
    const before = m.blockWrites(0);
    m.zeroPages(0, 4);
    expect(m.page(0).every((x) => x === 0)).toBe(true);
    expect(m.knownZero(0, 4)).toBe(true);
    expect(m.page(2)[0]).toBe(3);
    expect(m.blockWrites(0)).toBe(before + 1);
  });
});

describe("memory image write counts", () => {
  it("counts each recorded write once in every digest block it touches, and nothing for no pages", () => {
    // 4096-byte pages: 64 pages a block, 4 blocks.
    const m = new MemoryImage({ sizeBytes: MiB });
    const counts = () => Array.from({ length: m.blockCount }, (_, b) => m.blockWrites(b));
    expect(counts()).toEqual([0, 0, 0, 0]);
    m.writePage(0, Buffer.alloc(4096));
    expect(counts()).toEqual([1, 0, 0, 0]);
    // The last page of block 0 only: block 1 is untouched.
    m.markWritten(63, 1);
    expect(counts()).toEqual([2, 0, 0, 0]);
    // Blocks 0 … 2.
    m.markWritten(0, 128 + 1);
    expect(counts()).toEqual([3, 1, 1, 0]);
    // No pages: no block, even one that starts inside a block.
    m.markWritten(1, 0);
    m.zeroPages(70, 0);
    expect(counts()).toEqual([3, 1, 1, 0]);
    m.markDirty(255);
    expect(counts()).toEqual([3, 1, 1, 1]);
    m.zeroPages(64, 64);
    expect(counts()).toEqual([3, 2, 1, 1]);
  });
});

describe("memory image dirty pages", () => {
  it("counts a page dirtied twice once, and takes the dirty pages in order, clearing them", () => {
    const m = new MemoryImage({ sizeBytes: 64 * KiB });
    m.markDirty(9);
    m.markDirty(2);
    m.markDirty(9);
    expect(m.dirtyCount).toBe(2);
    expect(m.knownZero(9, 1)).toBe(false);
    expect(Array.from(m.takeDirty())).toEqual([2, 9]);
    expect(m.dirtyCount).toBe(0);
    expect(Array.from(m.takeDirty())).toEqual([]);
    m.markAllDirty();
    expect(m.dirtyCount).toBe(16);
    expect(Array.from(m.takeDirty())).toEqual(Array.from({ length: 16 }, (_, i) => i));
    m.markDirty(15);
    expect(Array.from(m.takeDirty())).toEqual([15]);
  });
});

describe("memory image equality", () => {
  it("equal bytes in another layout are not equal images; one differing byte is not either", () => {
    const a = new MemoryImage({ sizeBytes: 8 * KiB });
    const b = new MemoryImage({ sizeBytes: 8 * KiB, pageSize: 512 });
    expect(a.equals(b)).toBe(false);
    const c = new MemoryImage({ sizeBytes: 8 * KiB });
    expect(a.equals(c)).toBe(true);
    c.page(1)[9] = 1;
    expect(a.equals(c)).toBe(false);
    expect(a.equals(new MemoryImage({ sizeBytes: 4 * KiB }))).toBe(false);
  });
});

describe("memory image over more than one chunk", () => {
  it("locates and reads pages in the second chunk", () => {
    // The smallest image with two chunks: 256 MiB (2^19 pages of 512 bytes) and one page more.
    // (Allocating and touching it takes most of a second on a loaded machine: one such image only.)
    const ppc = (256 * MiB) / 512;
    const a = new MemoryImage({ pageSize: 512, sizeBytes: 256 * MiB + 512 });
    expect(a.pagesPerChunk).toBe(ppc);
    expect(a.chunks.map((c) => c.byteLength)).toEqual([256 * MiB, 512]);
    expect(a.byteRanges(ppc - 1, 2)).toEqual([
      [0, 256 * MiB - 512, 256 * MiB],
      [1, 0, 512],
    ]);
    expect(a.byteRanges(ppc, 1)).toEqual([[1, 0, 512]]);
    expect(a.views(ppc - 1, 2).map((v) => v.length)).toEqual([512, 512]);
    const last = Buffer.alloc(512);
    last[511] = 1;
    a.writePage(ppc, last);
    expect(Buffer.from(a.chunks[1]!)[511]).toBe(1);
    expect(a.page(ppc).equals(last)).toBe(true);
    expect(a.isZero(ppc)).toBe(false);
    a.markWritten(ppc - 1, 1);
    expect(a.isZero(ppc - 1)).toBe(true);
    // Written, but with zeros: read, in the second chunk, and found zero.
    a.writePage(ppc, Buffer.alloc(512));
    expect(a.knownZero(ppc, 1)).toBe(false);
    expect(a.isZero(ppc)).toBe(true);
    a.writePage(ppc, last);
    a.zeroPages(ppc, 1);
    expect(a.isZero(ppc)).toBe(true);
    expect(Buffer.from(a.chunks[1]!).every((x) => x === 0)).toBe(true);
  });
});

describe("memory image digest", () => {
  it("is SHA-256 over the SHA-256 of each 256 KiB block, the last one shorter", () => {
    // 100 pages: a block of 64 pages, then one of 36.
    const m = new MemoryImage({ sizeBytes: 100 * 4096, fill: "pattern" });
    const bytes = Buffer.from(m.chunks[0]!);
    const sha = (b: Uint8Array) => createHash("sha256").update(b).digest();
    const expected = createHash("sha256")
      .update(sha(bytes.subarray(0, 64 * 4096)))
      .update(sha(bytes.subarray(64 * 4096)))
      .digest("hex");
    expect(m.digest()).toBe(expected);
  });
});
