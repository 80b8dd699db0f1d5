// One pre-copy pass of the source, as the destination reads it off real unix
// sockets: PassBegin, zero pages as (first, count) markers, data pages as
// runs of consecutive pages (a frame holds at most a frame's worth of pages
// and 256 runs; zero markers go out 8192 runs a frame), PassEnd on every
// channel, and a blackout pass after which the data channels may close. The
// VM, the page frames and the channel scheduler are the real ones.
import type { Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { ChannelScheduler } from "../../src/migration/simulated/channel-scheduler.js";
import { FrameReader } from "../../src/migration/simulated/frame-io.js";
import { PageFrames } from "../../src/migration/simulated/page-frames.js";
import { PassSender } from "../../src/migration/simulated/pass-sender.js";
import { preCopyParams } from "../../src/migration/simulated/pre-copy-params.js";
import { SimulatedVm, type SimulatedVmOptions } from "../../src/migration/simulated/simulated-vm.js";
import type { TransferEvent } from "../../src/migration/simulated/transfer-events.js";
import type { Link } from "../../src/migration/simulated/transfer-link.js";
import { TransferTally } from "../../src/migration/simulated/transfer-tally.js";
import {
  decodePassBegin,
  decodePassEnd,
  decodeZeroPages,
  type Frame,
  MessageType,
} from "../../src/migration/simulated/wire-protocol.js";
import { unixSocketPair } from "../common.js";

/** `n` unix socket pairs: the dialed ends are the source's links, the accepted ends the destination's. */
async function pairs(n: number): Promise<{ links: Link[]; peers: Socket[] }> {
  const links: Link[] = [];
  const peers: Socket[] = [];
  for (let i = 0; i < n; i++) {
    const [socket, peer] = await unixSocketPair();
    links.push({ socket, reader: new FrameReader(socket, { maxPayload: 1 }) });
    peers.push(peer);
  }
  return { links, peers };
}

/** A frame as the test compares it: its type and, for page frames, the runs it names (and its data bytes). */
type Seen =
  | { type: "PassBegin"; pass: number; pages: number; blackout: boolean }
  | { type: "PassEnd"; pass: number; last: boolean }
  | { type: "ZeroPages"; runs: number[] }
  | { type: "Pages"; runs: number[]; dataBytes: number };

function seen(f: Frame): Seen {
  const p = f.payload;
  switch (f.type) {
    case MessageType.PassBegin:
      return { type: "PassBegin", ...decodePassBegin(p) };
    case MessageType.PassEnd:
      return { type: "PassEnd", ...decodePassEnd(p) };
    case MessageType.ZeroPages:
      return { type: "ZeroPages", runs: decodeZeroPages(p, 2 ** 32 - 1) };
    case MessageType.Pages: {
      const n = p.readUInt32BE(0);
      const runs = Array.from({ length: 2 * n }, (_, k) => p.readUInt32BE(4 + 4 * k));
      return { type: "Pages", runs, dataBytes: p.length - 4 - 8 * n };
    }
    default:
      throw new Error(`unexpected frame type ${f.type}`);
  }
}

/** The frames of one channel up to and including its PassEnd. */
async function channelFrames(peer: Socket): Promise<Seen[]> {
  const reader = new FrameReader(peer, { maxPayload: 4 << 20 });
  const out: Seen[] = [];
  for (;;) {
    const s = seen(await reader.next());
    out.push(s);
    if (s.type === "PassEnd") return out;
  }
}

interface PassOptions {
  readonly vm: Omit<SimulatedVmOptions, "sandboxId">;
  /** Pages made zero before the pass (on a pattern fill). */
  readonly zero?: readonly number[];
  readonly pages: readonly number[];
  readonly blackout?: boolean;
  readonly channels?: number;
  /** Called on the source's sockets once the pass was sent. */
  readonly after?: (links: Link[], channels: ChannelScheduler, peers: Socket[]) => Promise<void>;
}

/** Sends pass 1 of `pages`; what each channel received, the events and the tally. */
async function sendPass(o: PassOptions) {
  const vm = new SimulatedVm({ sandboxId: "sb", dirtyPagesPerSecond: 0, ...o.vm });
  for (const z of o.zero ?? []) vm.memory.zeroPages(z, 1);
  const { links, peers } = await pairs(o.channels ?? 1);
  const tally = new TransferTally("source", false, links.length);
  const broken: Error[] = [];
  const channels = new ChannelScheduler(
    links,
    tally,
    () => {},
    (err) => broken.push(err),
  );
  const frames = new PageFrames({
    memory: vm.memory,
    params: preCopyParams(undefined),
    channels,
    tally,
    faults: undefined,
    check: () => {},
  });
  const events: TransferEvent[] = [];
  const sender = new PassSender({ vm, frames, channels, tally, observe: (e) => events.push(e), faults: undefined });
  const received = Promise.all(peers.map(channelFrames));
  await sender.send(1, o.blackout ?? false, Uint32Array.from(o.pages));
  const perChannel = await received;
  await o.after?.(links, channels, peers);
  return { perChannel, events, tally, broken };
}

/** An `after`: the destination closes data channel 1, and the source's end sees it close. */
async function closeDataChannel(links: Link[], _channels: ChannelScheduler, peers: Socket[]): Promise<void> {
  const closed = new Promise((resolve) => links[1]!.socket.once("close", resolve));
  peers[1]!.destroy();
  await closed;
}

const passBegin = (pages: number, blackout = false): Seen => ({ type: "PassBegin", pass: 1, pages, blackout });
const passEnd = (last = false): Seen => ({ type: "PassEnd", pass: 1, last });

describe("a pre-copy pass", () => {
  it("sends consecutive zero pages as one marker and consecutive data pages as one run, each ending at a gap", async () => {
    // Zero: 0-2 and 4-6 (5 is not in the pass); data: 3, 7, 8, 9 (9 is not in the pass), 10.
    const { perChannel, tally } = await sendPass({
      vm: { memoryBytes: 16 * 512, pageSize: 512 },
      zero: [0, 1, 2, 4, 5, 6],
      pages: [0, 1, 2, 3, 4, 6, 7, 8, 10],
    });
    expect(perChannel).toEqual([
      [
        passBegin(9),
        { type: "Pages", runs: [3, 1, 7, 2, 10, 1], dataBytes: 4 * 512 },
        { type: "ZeroPages", runs: [0, 3, 4, 1, 6, 1] },
        passEnd(),
      ],
    ]);
    expect(tally.stats.pages).toBe(9);
    expect(tally.stats.zeroPages).toBe(5);
    expect(tally.stats.pageBytes).toBe(9 * 512);
    expect(tally.stats.blackoutPages).toBe(0);
  });

  it("ends a run and its frame at a frame's worth of pages (1 MiB)", async () => {
    // 512 KiB pages: two to a frame.
    const pageSize = 512 * 1024;
    const { perChannel, events } = await sendPass({ vm: { memoryBytes: 3 * pageSize, pageSize }, pages: [0, 1, 2] });
    expect(perChannel).toEqual([
      [
        passBegin(3),
        { type: "Pages", runs: [0, 2], dataBytes: 2 * pageSize },
        { type: "Pages", runs: [2, 1], dataBytes: pageSize },
        passEnd(),
      ],
    ]);
    expect(events.filter((e) => e.type === "progress")).toEqual([
      {
        type: "progress",
        side: "source",
        pass: 1,
        blackout: false,
        passDone: 2,
        passPages: 3,
        pageBytes: 2 * pageSize,
        imageBytes: 3 * pageSize,
      },
      {
        type: "progress",
        side: "source",
        pass: 1,
        blackout: false,
        passDone: 3,
        passPages: 3,
        pageBytes: 3 * pageSize,
        imageBytes: 3 * pageSize,
      },
    ]);
  });

  it("ends a Pages frame at 256 runs", async () => {
    const pages = Array.from({ length: 257 }, (_, k) => 2 * k);
    const { perChannel } = await sendPass({ vm: { memoryBytes: 514 * 512, pageSize: 512 }, pages });
    const runs = pages.flatMap((p) => [p, 1]);
    expect(perChannel).toEqual([
      [
        passBegin(257),
        { type: "Pages", runs: runs.slice(0, 512), dataBytes: 256 * 512 },
        { type: "Pages", runs: runs.slice(512), dataBytes: 512 },
        passEnd(),
      ],
    ]);
  });

  it("sends zero markers 8192 runs a frame", async () => {
    // 8193 zero pages, none next to another: 8193 runs.
    const pages = Array.from({ length: 8193 }, (_, k) => 2 * k);
    const { perChannel, tally } = await sendPass({
      vm: { memoryBytes: 16386 * 512, pageSize: 512, fill: "zero" },
      pages,
    });
    // Each frame as its type, run count and first and last run (the whole lists are long to compare).
    const brief = perChannel[0]!.map((s) =>
      s.type === "ZeroPages" ? { type: s.type, runs: s.runs.length / 2, ends: [s.runs[0], s.runs.at(-2)] } : s,
    );
    expect(brief).toEqual([
      passBegin(8193),
      { type: "ZeroPages", runs: 8192, ends: [0, 2 * 8191] },
      { type: "ZeroPages", runs: 1, ends: [2 * 8192, 2 * 8192] },
      passEnd(),
    ]);
    expect(perChannel[0]![1]).toEqual({ type: "ZeroPages", runs: pages.slice(0, 8192).flatMap((p) => [p, 1]) });
    expect(tally.stats.zeroPages).toBe(8193);
  });

  it("ends a brownout pass on every channel, and a data channel closing after it still breaks the transfer", async () => {
    const { perChannel, events, broken } = await sendPass({
      vm: { memoryBytes: 8 * 512, pageSize: 512 },
      pages: [0, 1, 2, 3],
      channels: 2,
      after: closeDataChannel,
    });
    expect(perChannel).toEqual([
      [passBegin(4), { type: "Pages", runs: [0, 4], dataBytes: 4 * 512 }, passEnd()],
      [passEnd()],
    ]);
    expect(events[0]).toEqual({
      type: "pass",
      side: "source",
      pass: 1,
      blackout: false,
      pages: 4,
      throttlePercent: 100,
    });
    expect(broken).toHaveLength(1);
  });

  it("ends the blackout pass as the last on every channel: a data channel may close after it", async () => {
    const { perChannel, tally, broken } = await sendPass({
      vm: { memoryBytes: 8 * 512, pageSize: 512 },
      pages: [0, 1, 2, 3],
      blackout: true,
      channels: 2,
      after: closeDataChannel,
    });
    expect(perChannel).toEqual([
      [passBegin(4, true), { type: "Pages", runs: [0, 4], dataBytes: 4 * 512 }, passEnd(true)],
      [passEnd(true)],
    ]);
    expect(tally.stats.blackoutPages).toBe(4);
    expect(broken).toEqual([]);
  });
});
