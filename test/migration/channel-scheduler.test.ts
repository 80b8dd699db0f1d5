// The source's channel scheduler over real unix socket pairs: frames go out
// in turn, the bytes count in the tally, the stop check runs before and
// after a channel's backlog, a data channel that closes before the last pass
// is a broken transfer (channel 0 and anything after the last pass are not),
// and flushed() waits for every channel's pushed-back writes.
import type { Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { ChannelScheduler } from "../../src/migration/simulated/channel-scheduler.js";
import { FrameReader } from "../../src/migration/simulated/frame-io.js";
import type { Link } from "../../src/migration/simulated/transfer-link.js";
import { TransferTally } from "../../src/migration/simulated/transfer-tally.js";
import { encodeFrame, MessageType, WireError } from "../../src/migration/simulated/wire-protocol.js";
import { unixSocketPair } from "../common.js";

const MAX_PAYLOAD = 1 << 20;

interface Pair {
  readonly link: Link;
  /** The other end, as the destination holds it. */
  readonly peer: Socket;
}

/** `n` connected unix socket pairs: the dialed end is the scheduler's link, the accepted end its peer. */
async function pairs(n: number): Promise<Pair[]> {
  const out: Pair[] = [];
  for (let i = 0; i < n; i++) {
    const [socket, peer] = await unixSocketPair();
    out.push({ link: { socket, reader: new FrameReader(socket, { maxPayload: MAX_PAYLOAD }) }, peer });
  }
  return out;
}

/** A scheduler on `ps` that records every channel it reports broken. */
function recordingBreaks(ps: readonly Pair[]): { channels: ChannelScheduler; broken: Error[] } {
  const broken: Error[] = [];
  const channels = new ChannelScheduler(
    ps.map((p) => p.link),
    new TransferTally("source", false, ps.length),
    () => {},
    (err) => broken.push(err),
  );
  return { channels, broken };
}

/** Destroys `p`'s peer and waits for the link's close (our own listener runs after the scheduler's). */
async function peerCloses(p: Pair): Promise<void> {
  const closed = new Promise((resolve) => p.link.socket.once("close", resolve));
  p.peer.destroy();
  await closed;
}

/** Collects what arrives on `peer` until `bytes` have come. */
function receive(peer: Socket, bytes: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const got: Buffer[] = [];
    let length = 0;
    const onData = (c: Buffer) => {
      got.push(c);
      length += c.length;
      if (length < bytes) return;
      peer.off("data", onData);
      resolve(Buffer.concat(got));
    };
    peer.on("data", onData);
  });
}

const frame = (type: MessageType, ...bytes: number[]) => encodeFrame(type, Buffer.from(bytes));
/** For tests of other things: the teardown closes the channels, which the scheduler reports here. */
const noBreak = () => {};

describe("the channel scheduler", () => {
  it("sends frames on the channels in turn, control on the first, and counts every byte in the tally", async () => {
    const ps = await pairs(2);
    const tally = new TransferTally("source", false, 2);
    const channels = new ChannelScheduler(
      ps.map((p) => p.link),
      tally,
      () => {},
      noBreak,
    );
    expect(channels.count).toBe(2);
    const a = frame(MessageType.Ready);
    const b = frame(MessageType.PassAck, 0, 0, 0, 1);
    const c = frame(MessageType.PassAck, 0, 0, 0, 2);
    const first = receive(ps[0]!.peer, a.length + b.length + 2 * c.length);
    const second = receive(ps[1]!.peer, b.length + c.length);
    await channels.sendControl(a); // channel 0; the turn stays on 0
    await channels.sendNext(b); // 0
    await channels.sendNext(b); // 1
    await channels.sendNext(c); // 0
    await channels.sendEvery(c); // 0 and 1
    expect(await first).toEqual(Buffer.concat([a, b, c, c]));
    expect(await second).toEqual(Buffer.concat([b, c]));
    expect(tally.stats.wireBytes).toBe(a.length + 2 * b.length + 3 * c.length);
  });

  it("counts the bytes of every buffer of a frame written in parts", async () => {
    const [p] = await pairs(1);
    const tally = new TransferTally("source", false, 1);
    const channels = new ChannelScheduler([p!.link], tally, () => {}, noBreak);
    const parts = [Buffer.from([2, 4, 0, 0]), Buffer.from([0, 0])];
    const got = receive(p!.peer, 6);
    await channels.sendOn(0, ...parts);
    expect(await got).toEqual(frame(MessageType.Ready));
    expect(tally.stats.wireBytes).toBe(6);
  });

  it("runs the stop check before and after waiting for the channel, and writes nothing when it throws", async () => {
    const [p] = await pairs(1);
    const tally = new TransferTally("source", false, 1);
    let calls = 0;
    const stop = new WireError("stopped");
    let failing = false;
    const channels = new ChannelScheduler(
      [p!.link],
      tally,
      () => {
        calls++;
        if (failing) throw stop;
      },
      noBreak,
    );
    await channels.sendControl(frame(MessageType.Ready));
    expect(calls).toBe(2);
    failing = true;
    await expect(channels.sendControl(frame(MessageType.Ready))).rejects.toBe(stop);
    expect(calls).toBe(3);
    expect(tally.stats.wireBytes).toBe(6);
  });

  it("reports a data channel that closes before the last pass, with a WireError", async () => {
    const ps = await pairs(2);
    const { broken } = recordingBreaks(ps);
    await peerCloses(ps[1]!);
    expect(broken).toHaveLength(1);
    expect(broken[0]).toBeInstanceOf(WireError);
    expect(broken[0]!.message).toBe("a memory-transfer channel closed");
  });

  it("does not report the first channel closing (the control channel has its own reader)", async () => {
    const ps = await pairs(2);
    const { broken } = recordingBreaks(ps);
    await peerCloses(ps[0]!);
    expect(broken).toEqual([]);
  });

  it("does not report a data channel closing once the last pass was sent", async () => {
    const ps = await pairs(2);
    const { channels, broken } = recordingBreaks(ps);
    channels.lastPassSent();
    await peerCloses(ps[1]!);
    expect(broken).toEqual([]);
  });

  it("is idle with nothing queued, and flushed() waits until a pushed-back channel drained", async () => {
    const ps = await pairs(2);
    const channels = new ChannelScheduler(
      ps.map((p) => p.link),
      new TransferTally("source", false, 2),
      () => {},
      noBreak,
    );
    expect(channels.idle()).toBe(true);
    // The peer does not read: 1 MiB more than the kernel holds waits in the socket.
    const peer = ps[1]!.peer;
    peer.pause();
    const big = Buffer.alloc(1 << 20);
    await channels.sendOn(1, big);
    expect(channels.idle()).toBe(false);
    const flushed = channels.flushed().then(() => channels.idle());
    const got = receive(peer, big.length);
    peer.resume();
    expect(await flushed).toBe(true);
    await got;
  });

  it("destroys every channel", async () => {
    const ps = await pairs(2);
    const channels = new ChannelScheduler(
      ps.map((p) => p.link),
      new TransferTally("source", false, 2),
      () => {},
      () => {},
    );
    channels.destroy();
    expect(ps.map((p) => p.link.socket.destroyed)).toEqual([true, true]);
  });
});
