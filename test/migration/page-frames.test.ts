// How the source puts pages on the wire (PageFrames): Pages frames straight
// from memory with their checksums, the fault hook's one corrupted page,
// ZeroPages markers, and compression where it pays. The compression probe
// sends 32 MiB of pages uncompressed, then 32 MiB compressed, times each to
// the link's drain and sends the rest the faster way; `performance.now()` is
// frozen (sockets, workers and promises stay real) and moved by hand between
// sends, so which way wins is the test's choice, not the machine's. Real unix
// sockets, a real channel scheduler and real worker threads; the far end reads
// the frames with the real frame reader.
import { randomFillSync } from "node:crypto";
import { crc32 } from "node:zlib";
import { afterEach, describe, expect, it, onTestFinished, vi } from "vitest";
import { ChannelScheduler } from "../../src/migration/simulated/channel-scheduler.js";
import { FrameReader } from "../../src/migration/simulated/frame-io.js";
import { MemoryImage } from "../../src/migration/simulated/memory-image.js";
import { PageFrames, type SourceFaults } from "../../src/migration/simulated/page-frames.js";
import { PageWorkers } from "../../src/migration/simulated/page-workers.js";
import { PRE_COPY_DEFAULTS, type PreCopyParams } from "../../src/migration/simulated/pre-copy-params.js";
import { TransferTally } from "../../src/migration/simulated/transfer-tally.js";
import { decodeZeroPages, type Frame, MessageType, runCount } from "../../src/migration/simulated/wire-protocol.js";
import { unixSocketPair } from "../common.js";

const MiB = 1024 * 1024;
const PAGE = 4096;
/** Pages of one probe frame: 8 MiB, so four of them make a probe's 32 MiB. */
const BIG = (8 * MiB) / PAGE;
/** The probe frames' run: pages 64 … 64+BIG-1, clear of the faulty page below. */
const PROBE_RUN = [64, BIG];
const BAD_PAGE = 5;

interface Received {
  readonly type: MessageType;
  readonly runs: number[];
  readonly frame: Frame;
}

interface Harness {
  readonly memory: MemoryImage;
  readonly tally: TransferTally;
  readonly frames: PageFrames;
  /** Every frame the far end read so far, in order. */
  readonly got: Received[];
  /** Resolves once the far end has read `n` frames. */
  received(n: number): Promise<Received[]>;
  /** Set to make the transfer's check throw. */
  stop: Error | undefined;
}

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function harness(o: {
  pages: number;
  pageSize?: number;
  checksums?: boolean;
  faults?: SourceFaults;
  compressionWorkers?: number;
}): Promise<Harness> {
  const pageSize = o.pageSize ?? PAGE;
  const memory = new MemoryImage({ sizeBytes: o.pages * pageSize, pageSize });
  const [local, remote] = await unixSocketPair();
  const tally = new TransferTally("source", o.checksums ?? false, 1);
  const params: PreCopyParams = {
    ...PRE_COPY_DEFAULTS,
    skipThrottling: false,
    blackoutThresholdMs: undefined,
    cancelIfThresholdExceeded: false,
    checksums: o.checksums ?? false,
    compressionWorkers: o.compressionWorkers,
  };
  const link = { socket: local, reader: new FrameReader(local, { maxPayload: 64 * MiB }) };
  const h: Harness = {
    memory,
    tally,
    got: [],
    stop: undefined,
    received: async (n) => {
      while (h.got.length < n) await new Promise<void>((resolve) => (wake = resolve));
      return h.got.slice(0, n);
    },
    frames: undefined as unknown as PageFrames,
  };
  const check = () => {
    if (h.stop !== undefined) throw h.stop;
  };
  const channels = new ChannelScheduler([link], tally, check, () => {});
  const frames = new PageFrames({ memory, params, channels, tally, faults: o.faults, check });
  Object.assign(h, { frames });
  cleanup.push(async () => frames.close());
  let wake: (() => void) | undefined;
  const rx = new FrameReader(remote, { maxPayload: 64 * MiB });
  void (async () => {
    for (;;) {
      const frame = await rx.next();
      const runs: number[] = [];
      if (frame.type === MessageType.Pages || frame.type === MessageType.CompressedPages) {
        const head = frame.head(4 + 8 * runCount(frame.head(4)));
        for (let at = 4; at < head.length; at += 4) runs.push(head.readUInt32BE(at));
      } else if (frame.type === MessageType.ZeroPages) runs.push(...decodeZeroPages(frame.payload, memory.pageCount));
      h.got.push({ type: frame.type, runs, frame });
      wake?.();
    }
  })().catch(() => {});
  return h;
}

async function pool(memory: MemoryImage, size: number): Promise<PageWorkers> {
  const p = await PageWorkers.start(memory, size);
  cleanup.push(() => p.close());
  return p;
}

const P = MessageType.Pages;
const types = (got: readonly Received[]) => got.map((r) => MessageType[r.type]);

/** Frozen `performance.now()`, at 1000 ms (not 0: a clock read as 0 would hide an elapsed time mixed up with it). */
function frozenClock(): void {
  vi.useFakeTimers({ toFake: ["performance"] });
  vi.advanceTimersByTime(1000);
  onTestFinished(() => void vi.useRealTimers());
}

/**
 * The probe: four 8 MiB frames uncompressed over `rawMs`, a blackout frame
 * (never a probe's), then four compressed over `compressedMs`; resolves once
 * the way for the rest is measured.
 */
async function probe(h: Harness, workers: PageWorkers, rawMs: number, compressedMs: number): Promise<void> {
  for (let k = 0; k < 4; k++) {
    if (k > 0) vi.advanceTimersByTime(rawMs / 3);
    await h.frames.sendRuns(workers, PROBE_RUN, BIG, false);
  }
  await h.frames.sendRuns(workers, PROBE_RUN, BIG, true);
  for (let k = 0; k < 4; k++) {
    if (k > 0) vi.advanceTimersByTime(compressedMs / 3);
    await h.frames.sendRuns(workers, PROBE_RUN, BIG, false);
  }
  // The last probe frame waited for every job and the link's drain before it measured.
  expect(types(await h.received(9))).toEqual([
    "Pages",
    "Pages",
    "Pages",
    "Pages",
    "Pages",
    ...Array(4).fill("CompressedPages"),
  ]);
  expect(h.got.length).toBe(9);
}

describe("the compression probe", () => {
  it.each([
    ["compressed is slower", 30, 60],
    ["both take as long", 30, 30],
  ])("keeps sending uncompressed when %s", async (_, rawMs, compressedMs) => {
    frozenClock();
    const h = await harness({ pages: 64 + BIG });
    const workers = await pool(h.memory, 2);
    await probe(h, workers, rawMs, compressedMs);
    vi.advanceTimersByTime(10);
    await h.frames.sendRuns(workers, PROBE_RUN, BIG, false);
    expect(types(await h.received(10)).at(-1)).toBe("Pages");
    expect(h.tally.stats.compressedPages).toBe(4 * BIG);
  });

  it("compresses the rest when compressed is faster: blackout and fault-free frames, two jobs per worker at most", async () => {
    frozenClock();
    const h = await harness({ pages: 64 + BIG + 8, checksums: true, faults: { corruptPageOnWire: BAD_PAGE } });
    // Pages that do not compress: deflate is no smaller, they go as Pages from the worker.
    const random = 64 + BIG;
    for (const view of h.memory.views(random, 4)) randomFillSync(view);
    const workers = await pool(h.memory, 2);
    await probe(h, workers, 30, 3);
    const send = async (runs: number[], blackout = false) => {
      let pages = 0;
      for (let k = 1; k < runs.length; k += 2) pages += runs[k]!;
      await h.frames.sendRuns(workers, runs, pages, blackout);
      // Each frame on the wire before the next is sent: the order below is the order sent.
      await h.frames.settle();
    };
    await send(PROBE_RUN);
    await send(PROBE_RUN, true);
    // Frames holding the faulty page go uncompressed (the fault is on the wire, after the checksum).
    await send([0, 2, BAD_PAGE, 3]);
    await send([0, 1, 3, 3]);
    await send([3, 2, 100, 2, 200, 3]);
    await send([random, 4]);
    // No more probing: however slow the link gets, the way stays.
    for (let k = 0; k < 3; k++) {
      vi.advanceTimersByTime(1000);
      await send(PROBE_RUN);
    }
    const rest = (await h.received(9 + 9)).slice(9);
    expect(rest.map((r) => [MessageType[r.type], r.runs])).toEqual([
      ["CompressedPages", PROBE_RUN],
      ["CompressedPages", PROBE_RUN],
      ["Pages", [0, 2, BAD_PAGE, 3]],
      ["Pages", [0, 1, 3, 3]],
      ["CompressedPages", [3, 2, 100, 2, 200, 3]],
      ["Pages", [random, 4]],
      ["CompressedPages", PROBE_RUN],
      ["CompressedPages", PROBE_RUN],
      ["CompressedPages", PROBE_RUN],
    ]);
    // The worker's incompressible frame: checksums, then the pages as they are.
    const plain = rest[5]!.frame.payload.subarray(12);
    const data = Buffer.concat(h.memory.views(random, 4));
    for (let k = 0; k < 4; k++) expect(plain.readUInt32BE(4 * k)).toBe(crc32(data.subarray(k * PAGE, (k + 1) * PAGE)));
    expect(plain.subarray(16).equals(data)).toBe(true);
    // Counted: the probe's four, the two after it, the small frame and the three last; not the incompressible one.
    expect(h.tally.stats.compressedPages).toBe(4 * BIG + 2 * BIG + 7 + 3 * BIG);

    // At most two jobs per worker in flight: four are handed out and sendRuns
    // returns before any is done (a worker answers only once the event loop
    // turns); the fifth waits for one of them to be sent.
    const before = h.tally.stats.compressedPages;
    const small = [64, 16];
    for (let k = 0; k < 4; k++) await h.frames.sendRuns(workers, small, 16, false);
    expect(h.tally.stats.compressedPages).toBe(before);
    await h.frames.sendRuns(workers, small, 16, false);
    expect(h.tally.stats.compressedPages).toBeGreaterThan(before);
    await h.frames.settle();
    expect(h.tally.stats.compressedPages).toBe(before + 5 * 16);

    // The transfer's check stops a send and a settle.
    expect(() => h.frames.checkJobs()).not.toThrow();
    h.stop = new Error("transfer stopped");
    await expect(h.frames.sendRuns(workers, small, 16, false)).rejects.toBe(h.stop);
    await expect(h.frames.settle()).rejects.toBe(h.stop);
    h.stop = undefined;
    // A job the workers refuse (they are closed) fails on its own; checkJobs throws it.
    await workers.close();
    await h.frames.sendRuns(workers, small, 16, false);
    await h.frames.settle();
    expect(() => h.frames.checkJobs()).toThrow("page workers closed");
  });
});

describe("uncompressed frames", () => {
  it("corrupt the faulty page once, on the wire only, after its checksum", async () => {
    const h = await harness({ pages: 256, pageSize: 512, checksums: true, faults: { corruptPageOnWire: BAD_PAGE } });
    for (let i = 0; i < 256; i++) h.memory.page(i).fill((i % 250) + 1);
    const sends = [
      [100, 2],
      [3, 2, BAD_PAGE, 3],
      [BAD_PAGE, 1],
    ];
    for (const runs of sends) {
      let pages = 0;
      for (let k = 1; k < runs.length; k += 2) pages += runs[k]!;
      // No workers: every frame goes as Pages.
      await h.frames.sendRuns(undefined, runs, pages, false);
    }
    const got = await h.received(3);
    expect(got.map((r) => [r.type, r.runs])).toEqual(sends.map((runs) => [P, runs]));
    const wire = (r: Received) => {
      const pages = r.runs.filter((_, k) => k % 2 === 1).reduce((a, b) => a + b, 0);
      const payload = r.frame.payload;
      const at = 4 + 4 * r.runs.length;
      return { sums: payload.subarray(at, at + 4 * pages), data: payload.subarray(at + 4 * pages) };
    };
    const memoryOf = (runs: number[]) =>
      Buffer.concat(runs.flatMap((v, k) => (k % 2 === 0 ? h.memory.views(v, runs[k + 1]!) : [])));
    expect(wire(got[0]!).data.equals(memoryOf(sends[0]!))).toBe(true);
    expect(wire(got[2]!).data.equals(memoryOf(sends[2]!))).toBe(true);
    // The second frame: pages 3, 4, 5, 6, 7; page 5's last byte flipped, nothing else.
    const { sums, data } = wire(got[1]!);
    const want = Buffer.from(memoryOf(sends[1]!));
    want[3 * 512 - 1]! ^= 0xff;
    expect(data.equals(want)).toBe(true);
    expect(sums.readUInt32BE(8)).toBe(crc32(h.memory.page(BAD_PAGE)));
  });
});

describe("zero pages", () => {
  it("go as one ZeroPages frame of the runs, which are emptied; no runs, no frame", async () => {
    const h = await harness({ pages: 64, pageSize: 512 });
    await h.frames.sendZeroRuns([]);
    const runs = [1, 2, 9, 1];
    await h.frames.sendZeroRuns(runs);
    expect(runs).toEqual([]);
    const [first] = await h.received(1);
    expect(first).toMatchObject({ type: MessageType.ZeroPages, runs: [1, 2, 9, 1] });
  });
});

describe("the workers PageFrames starts", () => {
  it("are started when compression is on and stopped by close", async () => {
    const h = await harness({ pages: 64, pageSize: 512, compressionWorkers: 1 });
    const workers = await h.frames.workers();
    expect(workers?.size).toBe(1);
    h.frames.close();
    // close's stop runs once the (started) pool is handed over: one turn of the same promise.
    await h.frames.workers();
    await expect(workers!.run({ op: "hash", chunk: 0, start: 0, end: 512, block: 512 })).rejects.toThrow(
      "page workers closed",
    );
  });

  it("are not started without compression", async () => {
    const h = await harness({ pages: 64, pageSize: 512 });
    expect(h.frames.workers()).toBeUndefined();
  });
});
