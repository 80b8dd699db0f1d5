// The destination's page applier: Pages frames copied into memory (or left
// where the reader placed them) with their checksums verified, CompressedPages
// inflated on worker threads straight into memory, ZeroPages markers zeroing
// pages; every page counted and reported against the pass; and frames whose
// shape does not hold what they claim refused with the message the user
// reads. Frames are built from the wire encoding by hand (the applier takes
// frames, not sockets); the worker threads are real.
import { crc32, deflateRawSync } from "node:zlib";
import { afterEach, describe, expect, it } from "vitest";
import { MemoryImage } from "../../src/migration/simulated/memory-image.js";
import { Mismatch, PageApplier } from "../../src/migration/simulated/page-applier.js";
import type { TransferEvent } from "../../src/migration/simulated/transfer-events.js";
import { TransferTally } from "../../src/migration/simulated/transfer-tally.js";
import {
  encodeZeroPages,
  FRAME_HEADER,
  Frame,
  MessageType,
  WireError,
} from "../../src/migration/simulated/wire-protocol.js";

const PAGE = 512;
const PAGES = 64;

/** Page `i`'s content as the source would send it: every page different, none zero. */
function content(i: number): Buffer {
  const b = Buffer.alloc(PAGE, (i * 7 + 1) & 0xff);
  b.writeUInt32BE(i + 1, 0);
  return b;
}

function runList(runs: readonly number[]): Buffer {
  const b = Buffer.alloc(4 + 4 * runs.length);
  b.writeUInt32BE(runs.length / 2, 0);
  for (let k = 0; k < runs.length; k++) b.writeUInt32BE(runs[k]!, 4 + 4 * k);
  return b;
}

function pagesOf(runs: readonly number[]): number[] {
  const out: number[] = [];
  for (let r = 0; r < runs.length; r += 2) for (let i = 0; i < runs[r + 1]!; i++) out.push(runs[r]! + i);
  return out;
}

function sumsOf(pages: readonly Buffer[]): Buffer {
  const b = Buffer.alloc(4 * pages.length);
  for (let k = 0; k < pages.length; k++) b.writeUInt32BE(crc32(pages[k]!), 4 * k);
  return b;
}

/** A frame as a reader hands it over, its payload split over two socket chunks. */
function frame(type: MessageType, payload: Buffer, placed = false): Frame {
  const cut = Math.min(5, payload.length);
  return new Frame(type, [payload.subarray(0, cut), payload.subarray(cut)], payload.length, placed);
}

interface Setup {
  memory: MemoryImage;
  tally: TransferTally;
  applier: PageApplier;
  events: TransferEvent[];
  failures: Error[];
}

let open: PageApplier | undefined;
afterEach(() => {
  open?.close();
  open = undefined;
});

function setup(checksums: boolean): Setup {
  const memory = new MemoryImage({ sizeBytes: PAGES * PAGE, pageSize: PAGE });
  const tally = new TransferTally("destination", checksums, 1);
  const events: TransferEvent[] = [];
  const failures: Error[] = [];
  const applier = new PageApplier({
    memory,
    tally,
    observe: (e) => events.push(e),
    compressionWorkers: 1,
    onJobFailed: (err) => failures.push(err),
  });
  open = applier;
  return { memory, tally, applier, events, failures };
}

const progress = (events: TransferEvent[]) => events.filter((e) => e.type === "progress");

describe("Pages frames", () => {
  it("are copied into memory, their checksums verified, each page counted and reported against the pass", () => {
    const { memory, tally, applier, events } = setup(true);
    applier.beginPass(3, 5, false);
    const runs = [2, 2, 10, 1];
    const data = pagesOf(runs).map(content);
    applier.applyPages(frame(MessageType.Pages, Buffer.concat([runList(runs), sumsOf(data), ...data])));
    for (const i of pagesOf(runs)) {
      expect(memory.page(i).equals(content(i))).toBe(true);
      expect(memory.isZero(i)).toBe(false);
    }
    expect(memory.isZero(4)).toBe(true);
    applier.applyPages(frame(MessageType.Pages, Buffer.concat([runList([20, 1]), sumsOf([content(20)]), content(20)])));
    expect(tally.stats).toMatchObject({ pages: 4, pageBytes: 4 * PAGE, blackoutPages: 0 });
    expect(progress(events)).toEqual([
      {
        type: "progress",
        side: "destination",
        pass: 3,
        blackout: false,
        passDone: 3,
        passPages: 5,
        pageBytes: 3 * PAGE,
        imageBytes: PAGES * PAGE,
      },
      expect.objectContaining({ pass: 3, passDone: 4, passPages: 5, pageBytes: 4 * PAGE }),
    ]);
    expect(applier.position).toEqual({ pass: 3, blackout: false, passPages: 5, passDone: 4 });
  });

  it("before any pass begins, count as brownout pages of pass 0", () => {
    const { tally, applier, events } = setup(false);
    expect(applier.position).toEqual({ pass: 0, blackout: false, passPages: 0, passDone: 0 });
    applier.applyPages(frame(MessageType.Pages, Buffer.concat([runList([1, 1]), content(1)])));
    expect(tally.stats.blackoutPages).toBe(0);
    expect(progress(events)).toEqual([expect.objectContaining({ pass: 0, blackout: false, passDone: 1 })]);
  });

  it("of the blackout count as blackout pages", () => {
    const { tally, applier } = setup(false);
    applier.beginPass(4, 1, true);
    applier.applyPages(frame(MessageType.Pages, Buffer.concat([runList([1, 1]), content(1)])));
    expect(tally.stats).toMatchObject({ pages: 1, blackoutPages: 1 });
  });

  it("that the reader placed in memory already are counted and verified, not copied", () => {
    const { memory, applier, events } = setup(true);
    const runs = [5, 2];
    const data = pagesOf(runs).map(content);
    // The reader wrote the pages into memory; the frame keeps the run list and checksums only.
    Buffer.concat(data).copy(memory.views(5, 2)[0]!);
    const head = Buffer.concat([runList(runs), sumsOf(data)]);
    applier.applyPages(frame(MessageType.Pages, head, true));
    expect(memory.isZero(5)).toBe(false);
    expect(memory.page(6).equals(content(6))).toBe(true);
    expect(progress(events)).toEqual([expect.objectContaining({ passDone: 2 })]);
  });

  it("whose length does not hold their pages are refused, memory untouched", () => {
    const { memory, applier, events } = setup(true);
    const runs = [3, 2];
    const data = pagesOf(runs).map(content);
    const whole = Buffer.concat([runList(runs), sumsOf(data), ...data]);
    for (const payload of [whole.subarray(0, whole.length - 1), Buffer.concat([whole, content(9)])]) {
      const f = frame(MessageType.Pages, payload);
      expect(() => applier.applyPages(f)).toThrow(WireError);
      expect(() => applier.applyPages(f)).toThrow(
        `memory stream: Pages frame of ${payload.length} bytes does not hold 2 pages`,
      );
    }
    expect(memory.isZero(3)).toBe(true);
    expect(memory.isZero(4)).toBe(true);
    expect(events).toEqual([]);
  });

  it("with a page whose checksum does not match are a Mismatch naming the page and the pass", () => {
    const { applier } = setup(true);
    applier.beginPass(2, 3, false);
    const runs = [7, 3];
    const data = pagesOf(runs).map(content);
    const sums = sumsOf(data);
    sums[4]! ^= 1;
    const f = frame(MessageType.Pages, Buffer.concat([runList(runs), sums, ...data]));
    expect(() => applier.applyPages(f)).toThrow(Mismatch);
    expect(() => applier.applyPages(f)).toThrow("checksum mismatch on page 8 in pass 2");
  });
});

describe("frame shapes", () => {
  const refused = (checksums: boolean, type: MessageType, payload: Buffer, message: string) => {
    const { applier } = setup(checksums);
    const f = frame(type, payload);
    const apply = () => (type === MessageType.Pages ? applier.applyPages(f) : applier.applyCompressed(f));
    expect(apply).toThrow(WireError);
    expect(apply).toThrow(message);
  };

  it("a frame too short for its run count, or for its run list, is refused", () => {
    refused(false, MessageType.Pages, Buffer.from([0, 0]), "memory stream: Pages frame of 2 bytes with 0 runs");
    refused(
      false,
      MessageType.Pages,
      runList([1, 1]).subarray(0, 4),
      "memory stream: Pages frame of 4 bytes with 1 runs",
    );
    refused(false, MessageType.Pages, Buffer.alloc(4), "memory stream: Pages frame of 4 bytes with 0 runs");
    refused(
      false,
      MessageType.CompressedPages,
      runList([1, 1, 3, 1]).subarray(0, 12),
      "memory stream: CompressedPages frame of 12 bytes with 2 runs",
    );
  });

  it("a frame too short for its checksums is refused", () => {
    const payload = Buffer.concat([runList([1, 2]), Buffer.alloc(4)]);
    refused(true, MessageType.Pages, payload, "memory stream: Pages frame too short for its checksums");
    refused(
      true,
      MessageType.CompressedPages,
      payload,
      "memory stream: CompressedPages frame too short for its checksums",
    );
  });

  it("a CompressedPages frame with no data is refused at once", () => {
    const payload = Buffer.concat([runList([1, 2]), Buffer.alloc(8)]);
    refused(
      true,
      MessageType.CompressedPages,
      payload,
      `memory stream: CompressedPages frame of 20 bytes holds no data`,
    );
  });
});

describe("ZeroPages frames", () => {
  it("zero their pages, each counted and reported", () => {
    const { memory, tally, applier, events } = setup(false);
    applier.beginPass(1, 4, false);
    for (const i of [4, 5, 6, 9]) memory.writePage(i, content(i));
    const f = encodeZeroPages([4, 3, 9, 1]);
    applier.applyZeroPages(new Frame(MessageType.ZeroPages, [f.subarray(FRAME_HEADER)], f.length - FRAME_HEADER));
    for (const i of [4, 5, 6, 9]) expect(memory.page(i).every((b) => b === 0)).toBe(true);
    expect(tally.stats).toMatchObject({ zeroPages: 4, pages: 4, pageBytes: 4 * PAGE });
    expect(progress(events).map((e) => e.type === "progress" && e.passDone)).toEqual([3, 4]);
  });
});

describe("CompressedPages frames", () => {
  const compressed = (runs: readonly number[], sums: Buffer, pages: readonly Buffer[]) =>
    frame(MessageType.CompressedPages, Buffer.concat([runList(runs), sums, deflateRawSync(Buffer.concat(pages))]));

  it("are inflated into memory on a worker, then counted and reported", async () => {
    const { memory, tally, applier, events, failures } = setup(true);
    applier.beginPass(1, 5, false);
    const runs = [10, 2, 20, 3];
    const data = pagesOf(runs).map(content);
    applier.applyCompressed(compressed(runs, sumsOf(data), data));
    await applier.settled();
    expect(failures).toEqual([]);
    for (const i of pagesOf(runs)) {
      expect(memory.page(i).equals(content(i))).toBe(true);
      // Marked written: a page never written would read as known zero.
      expect(memory.isZero(i)).toBe(false);
    }
    expect(tally.stats).toMatchObject({ compressedPages: 5, pages: 5 });
    expect(progress(events)).toEqual([expect.objectContaining({ pass: 1, passDone: 5, passPages: 5 })]);
  });

  it("with a page whose checksum does not match fail with a Mismatch naming the page and the frame's pass", async () => {
    const { memory, applier, failures } = setup(true);
    applier.beginPass(2, 10, false);
    const runs = [10, 2, 20, 3];
    const data = pagesOf(runs).map(content);
    for (const k of [2, 4]) {
      const sums = sumsOf(data);
      sums[4 * k]! ^= 1;
      applier.applyCompressed(compressed(runs, sums, data));
    }
    // A later pass began meanwhile: the message names the frame's own.
    applier.beginPass(3, 0, false);
    await applier.settled();
    expect(failures).toEqual([expect.any(Mismatch), expect.any(Mismatch)]);
    expect(failures.map((e) => e.message).sort()).toEqual([
      "checksum mismatch on page 20 in pass 2",
      "checksum mismatch on page 22 in pass 2",
    ]);
    expect(memory.isZero(10)).toBe(true);
  });

  it("that do not inflate to their pages fail with a WireError", async () => {
    const { applier, failures } = setup(false);
    applier.applyCompressed(compressed([1, 2], Buffer.alloc(0), [content(1)]));
    await applier.settled();
    expect(failures).toEqual([expect.any(WireError)]);
    expect(failures[0]!.message).toBe(`memory stream: compressed pages inflate to ${PAGE} bytes, expected ${2 * PAGE}`);
  });

  it("once the applier is closed, fail: its workers are stopped", async () => {
    const { memory, applier, failures } = setup(false);
    applier.applyCompressed(compressed([1, 1], Buffer.alloc(0), [content(1)]));
    await applier.settled();
    expect(failures).toEqual([]);
    applier.close();
    applier.applyCompressed(compressed([2, 1], Buffer.alloc(0), [content(2)]));
    await applier.settled();
    expect(failures).toEqual([expect.any(WireError)]);
    expect(failures[0]!.message).toBe("memory stream: page workers closed");
    expect(memory.isZero(2)).toBe(true);
  });
});
