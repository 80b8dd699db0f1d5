// How a Channel hands its frames to the transport: the calls tests see only
// the bytes, which come out the same however they are grouped. Here a Duplex
// records each write, so the grouping itself is checked: one corked writev,
// big buffers passed on uncopied, small neighbours joined into one.
import { once } from "node:events";
import { Duplex } from "node:stream";
import { describe, expect, it } from "vitest";
import { Channel, type ChannelHandler } from "../../src/channel.js";
import { Code } from "../../src/code.js";
import { connectionSettings, SERVER_CONNECTIONS } from "../../src/connection-settings.js";
import { encodeFrame, type Frame } from "../../src/frame.js";
import type { TtrpcError } from "../../src/ttrpc-error.js";

/** A transport that records what reaches it: one entry per _write or _writev, its chunks. */
class Recorder extends Duplex {
  readonly writes: Buffer[][] = [];
  #held: (() => void) | undefined;

  constructor(readonly hold = false) {
    super({ highWaterMark: 16 });
  }
  override _read(): void {}
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    this.writes.push([chunk]);
    this.#settle(done);
  }
  override _writev(chunks: { chunk: Buffer }[], done: () => void): void {
    this.writes.push(chunks.map((c) => c.chunk));
    this.#settle(done);
  }
  /** Completes the write a holding recorder kept back, on a later turn, as a socket's write completes. */
  release(): void {
    const done = this.#held;
    this.#held = undefined;
    if (done !== undefined) setImmediate(done);
  }
  #settle(done: () => void): void {
    if (this.hold) this.#held = done;
    else done();
  }
}

class Handler implements ChannelHandler {
  readonly frames: Frame[] = [];
  closedWith: TtrpcError | undefined;
  frame(f: Frame): void {
    this.frames.push(f);
  }
  oversized(): void {}
  closed(error: TtrpcError): void {
    this.closedWith = error;
  }
}

const settings = connectionSettings({}, SERVER_CONNECTIONS);
const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);
const lengths = (r: Recorder) => r.writes.map((w) => w.map((c) => c.length));
/** Closes the channel and waits for the transport to close (the channel's linger timer goes with it). */
async function closeAndWait(ch: Channel, r: Recorder): Promise<void> {
  const closed = once(r, "close");
  ch.close();
  await closed;
}
/** Settles after everything queued for this turn and the next: the channel flushes on nextTick. */
const nextTurn = () => new Promise<string>((resolve) => setImmediate(() => resolve("later")));

describe("Channel writes", () => {
  it("a batch over 64 KiB: one corked writev, big buffers uncopied, small runs joined", async () => {
    const r = new Recorder();
    const ch = new Channel(r, new Handler(), settings);
    const big1 = bytes(40 * 1024, 1);
    const big2 = bytes(30 * 1024, 2);
    const lone = bytes(10, 3);
    const edge = bytes(4 * 1024, 4); // not below the join size: goes as it is
    const s = [bytes(10, 5), bytes(20, 6), bytes(30, 7), bytes(40, 8)];
    const list = [big1, big2, lone, edge, s[0]!, s[1]!, big1, s[2]!, s[3]!];
    ch.write(list);
    // Over 64 KiB, the batch leaves now, not on the next tick.
    expect(lengths(r)).toEqual([[40 * 1024, 30 * 1024, 10, 4 * 1024, 30, 40 * 1024, 70]]);
    const chunks = r.writes[0]!;
    expect(Buffer.concat(chunks)).toEqual(Buffer.concat(list));
    // Passed on as they are: the same memory, no copy.
    for (const [i, original] of [big1, big2, lone, edge, big1].entries()) {
      expect(chunks[[0, 1, 2, 3, 5][i]!]!.buffer).toBe(original.buffer);
    }
    await closeAndWait(ch, r);
  });

  it("small frames of one turn leave together on the next tick, as one buffer", async () => {
    const r = new Recorder();
    const ch = new Channel(r, new Handler(), settings);
    ch.write([bytes(5, 1)]);
    ch.write([bytes(6, 2)]);
    expect(r.writes).toEqual([]);
    await nextTurn();
    expect(lengths(r)).toEqual([[11]]);
    await closeAndWait(ch, r);
  });

  it("drained() waits while the transport is over its mark, and not once the channel closed", async () => {
    const r = new Recorder(true);
    const ch = new Channel(r, new Handler(), settings);
    await expect(Promise.race([ch.drained().then(() => "drained"), nextTurn()])).resolves.toBe("drained");

    ch.write([bytes(64 * 1024, 1)]);
    expect(ch.needsDrain).toBe(true);
    // Resolved by the transport's drain, not before it.
    const events: string[] = [];
    r.on("drain", () => events.push("transport drained"));
    const waiting = ch.drained().then(() => events.push("drained() resolved"));
    r.release();
    await waiting;
    expect(events).toEqual(["transport drained", "drained() resolved"]);

    ch.write([bytes(64 * 1024, 2)]);
    expect(ch.needsDrain).toBe(true);
    const closed = once(r, "close");
    ch.close();
    await expect(Promise.race([ch.drained().then(() => "drained"), nextTurn()])).resolves.toBe("drained");
    r.release();
    await closed;
  });

  it("a handler that throws ends this connection with INTERNAL, not the process", async () => {
    const r = new Recorder();
    const handler = new Handler();
    const bug = new Error("handler bug");
    handler.frame = () => {
      throw bug;
    };
    const ch = new Channel(r, handler, settings);
    r.push(encodeFrame(1, 1, 0, new Uint8Array(0)));
    await nextTurn();
    expect(ch.closed).toBe(true);
    const e = handler.closedWith!;
    expect([e.code, e.rawMessage, e.cause]).toEqual([Code.Internal, "ttrpc: internal error handling a frame", bug]);
    expect(r.destroyed).toBe(true);
  });
});
