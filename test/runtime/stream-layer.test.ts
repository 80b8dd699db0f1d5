// The stream layer (src/stream.ts, src/stream-table.ts, src/message-queue.ts)
// on its own, below client and server: a StreamTable on one end of a real
// unix socket, raw frames written on the other. See docs/protocol.md §4
// (Data flags), §6 (size limit) and §13 (stream full) for the rules checked here.
import { Server as NetServer, Socket } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it, onTestFinished, vi } from "vitest";
import { StringValueSchema } from "@bufbuild/protobuf/wkt";
import {
  Code,
  ErrorReason,
  Flags,
  FrameDecoder,
  MessageType,
  OversizedMessageError,
  TtrpcError,
  encodeFrame,
  type Frame,
} from "ttrpc-es";
import { type ConnectionLimits, connectionSettings } from "../../src/connection-settings.js";
import { MessageQueue } from "../../src/message-queue.js";
import { Stream } from "../../src/stream.js";
import { StreamTable, type StreamOwner } from "../../src/stream-table.js";
import { drain, fakeTimeouts, tempDir } from "../common.js";

/** Both ends of a connected unix socket, destroyed after the test. */
async function socketPair(): Promise<[Socket, Socket]> {
  const net = new NetServer();
  const path = join(tempDir(), "pair.sock");
  const accepted = new Promise<Socket>((resolve) => net.once("connection", resolve));
  await new Promise<void>((resolve) => net.listen(path, resolve));
  const a = new Socket();
  await new Promise<void>((resolve) => a.connect({ path }, resolve));
  const b = await accepted;
  net.close(); // stops listening now; its callback would wait for the pair to close
  onTestFinished(() => {
    a.destroy();
    b.destroy();
  });
  return [a, b];
}

/** What the owner of a table was told, in order. */
class Recorder implements StreamOwner<Stream> {
  readonly events: string[] = [];
  readonly oversizedErrors: OversizedMessageError[] = [];
  closedWith: TtrpcError | undefined;
  #waiters: (() => void)[] = [];

  frame(f: Frame, stream: Stream | undefined): void {
    this.events.push(`frame ${f.streamId} ${stream === undefined ? "unknown" : "routed"}`);
    if (f.type === MessageType.Data) stream?.receiveData(f.flags, f.payload);
    this.#wake();
  }

  oversized(error: OversizedMessageError, id: number, stream: Stream | undefined): void {
    this.oversizedErrors.push(error);
    this.events.push(`oversized ${id} ${stream === undefined ? "unknown" : "routed"}`);
    stream?.close(error);
    this.#wake();
  }

  closed(error: TtrpcError): void {
    this.closedWith = error;
    this.events.push("closed");
    this.#wake();
  }

  async until(n: number): Promise<void> {
    while (this.events.length < n) await new Promise<void>((r) => this.#waiters.push(r));
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }
}

async function tableOnPair(limits: ConnectionLimits = {}, skipUnknownStreams = false) {
  const [near, far] = await socketPair();
  const owner = new Recorder();
  const settings = connectionSettings(limits, { pauseReadsWhileWriteBlocked: false, skipUnknownStreams });
  const table = new StreamTable<Stream>(near, owner, settings);
  return { table, owner, far };
}

const data = (id: number, flags: number, payload: Uint8Array = new Uint8Array(0)) =>
  encodeFrame(id, MessageType.Data, flags, payload);

describe("Data frames: every combination of RemoteClosed and NoData", () => {
  const msg = Uint8Array.of(1, 2, 3);
  const cases: { flags: number; payload: Uint8Array; messages: number[][]; ended: boolean }[] = [
    { flags: 0, payload: msg, messages: [[1, 2, 3]], ended: false },
    { flags: 0, payload: new Uint8Array(0), messages: [[]], ended: false },
    { flags: Flags.NoData, payload: new Uint8Array(0), messages: [], ended: false },
    { flags: Flags.RemoteClosed, payload: msg, messages: [[1, 2, 3]], ended: true },
    { flags: Flags.RemoteClosed, payload: new Uint8Array(0), messages: [[]], ended: true },
    { flags: Flags.RemoteClosed | Flags.NoData, payload: new Uint8Array(0), messages: [], ended: true },
    // The receiver's protocol checks refuse this one (the server does); the layer drops the bytes.
    { flags: Flags.RemoteClosed | Flags.NoData, payload: msg, messages: [], ended: true },
  ];
  for (const c of cases) {
    it(`flags ${c.flags} with ${c.payload.length} bytes: ${c.messages.length} message(s), ${c.ended ? "ended" : "open"}`, async () => {
      const { table, owner, far } = await tableOnPair();
      const stream = new Stream(1, table);
      table.add(stream);
      far.write(data(1, c.flags, c.payload));
      await owner.until(1);
      expect(stream.remoteClosed).toBe(c.ended);
      expect(stream.ended).toBe(c.ended);
      if (!c.ended) stream.end(); // so that drain returns
      const { messages, error } = await drain(stream);
      expect(error).toBeUndefined();
      expect(messages.map((m) => [...(m as Uint8Array)])).toEqual(c.messages);
      table.channel.close();
    });
  }

  it("decodes messages as decodeAs says, and ends the stream on one that does not decode", async () => {
    const { table, owner, far } = await tableOnPair();
    const stream = new Stream(1, table);
    stream.decodeAs = StringValueSchema;
    table.add(stream);
    far.write(data(1, 0, Uint8Array.of(0x0a, 0x02, 0x68, 0x69)));
    far.write(data(1, 0, Uint8Array.of(0x0a, 0x09)));
    await owner.until(2);
    await expect(stream.next()).resolves.toMatchObject({ value: { value: "hi" }, done: false });
    await expect(stream.next()).rejects.toThrow();
    expect(stream.ended).toBe(true);
    table.channel.close();
  });
});

describe("routing", () => {
  it("routes an oversized frame to its stream, tells the owner of one for no stream, and goes on reading", async () => {
    const { table, owner, far } = await tableOnPair({ maxMessageSize: 16 });
    const stream = new Stream(1, table);
    table.add(stream);
    far.write(data(3, 0, new Uint8Array(17)));
    far.write(data(1, 0, new Uint8Array(17)));
    far.write(data(5, 0, new Uint8Array(16)));
    await owner.until(3);
    expect(owner.events).toEqual(["oversized 3 unknown", "oversized 1 routed", "frame 5 unknown"]);
    expect(owner.oversizedErrors.map((e) => [e.rejectedLength, e.maximumLength, e.code])).toEqual([
      [17, 16, Code.ResourceExhausted],
      [17, 16, Code.ResourceExhausted],
    ]);
    await expect(stream.next()).rejects.toBeInstanceOf(OversizedMessageError);
    expect(table.get(1)).toBeUndefined();
    table.channel.close();
  });

  it("skips frames of streams not in the table when asked to (the client)", async () => {
    const { table, owner, far } = await tableOnPair({}, true);
    const stream = new Stream(3, table);
    table.add(stream);
    far.write(data(1, 0, Uint8Array.of(9)));
    far.write(data(3, 0, Uint8Array.of(7)));
    await owner.until(1);
    expect(owner.events).toEqual(["frame 3 routed"]);
    table.channel.close();
  });
});

describe("the end of the connection", () => {
  it("closes every stream: each reader gets what was queued, then the connection's error; then the owner is told", async () => {
    const { table, owner, far } = await tableOnPair();
    const streams = [1, 3, 5].map((id) => new Stream(id, table));
    for (const s of streams) table.add(s);
    for (const s of streams) far.write(data(s.id, 0, Uint8Array.of(s.id)));
    await owner.until(3);
    let openAtClose = -1;
    const closed = new Promise<void>((resolve) => {
      const inner = owner.closed.bind(owner);
      owner.closed = (e) => {
        openAtClose = table.size;
        inner(e);
        resolve();
      };
    });
    far.destroy();
    await closed;
    expect(openAtClose).toBe(0);
    expect(owner.closedWith).toMatchObject({ code: Code.Unavailable, reason: ErrorReason.PeerClosed });
    for (const s of streams) {
      expect(s.finished).toBe(true);
      const { messages, error } = await drain(s);
      expect(messages.map((m) => [...(m as Uint8Array)])).toEqual([[s.id]]);
      expect(error).toBe(owner.closedWith);
    }
  });

  it("a stream leaves its table and tells its owner once, however often it is ended", async () => {
    const { table } = await tableOnPair();
    const finishes: unknown[] = [];
    class Counted extends Stream {
      protected override onFinish(reason: unknown): void {
        finishes.push(reason);
      }
    }
    const s = new Counted(1, table);
    table.add(s);
    const first = new Error("first");
    s.close(first);
    expect([s.finished, table.size]).toEqual([true, 0]);
    s.cancel(new Error("second"));
    s.close();
    expect(finishes).toEqual([first]);
    // Cancelled first: out of the table too, its reader failed at once.
    const c = new Counted(3, table);
    table.add(c);
    c.push(Uint8Array.of(1));
    const cancelled = new Error("cancelled");
    c.cancel(cancelled);
    expect([c.finished, table.size]).toEqual([true, 0]);
    expect(finishes).toEqual([first, cancelled]);
    await expect(c.next()).rejects.toBe(cancelled);
  });

  it("a local close ends the streams with reason local-closed", async () => {
    const { table, owner } = await tableOnPair();
    const s = new Stream(1, table);
    table.add(s);
    table.channel.close();
    await owner.until(1);
    await expect(s.next()).rejects.toMatchObject({ reason: ErrorReason.LocalClosed });
  });
});

describe("the send path", () => {
  async function framesAt(far: Socket, n: number): Promise<Frame[]> {
    const frames: Frame[] = [];
    const decoder = new FrameDecoder(
      { frame: (f) => frames.push({ ...f, payload: f.payload.slice() }), oversized: () => {} },
      1 << 20,
    );
    while (frames.length < n) {
      const chunk = await new Promise<Buffer>((resolve) => far.once("data", resolve));
      decoder.push(chunk);
    }
    return frames;
  }

  it("sends each message as Data, then closes the send side with RemoteClosed | NoData", async () => {
    const { table, far } = await tableOnPair();
    const s = new Stream(1, table);
    table.add(s);
    const got = framesAt(far, 3);
    await table.send(s, StringValueSchema, toAsync([{ value: "a" }, { value: "b" }]));
    const frames = await got;
    expect(frames.map((f) => [f.streamId, f.type, f.flags, f.payload.length])).toEqual([
      [1, MessageType.Data, 0, 3],
      [1, MessageType.Data, 0, 3],
      [1, MessageType.Data, Flags.RemoteClosed | Flags.NoData, 0],
    ]);
    table.channel.close();
  });

  it("refuses a message over the limit before writing it, and sends nothing once the stream finished", async () => {
    const { table } = await tableOnPair({ maxMessageSize: 4 });
    const s = new Stream(1, table);
    table.add(s);
    await expect(table.send(s, StringValueSchema, toAsync([{ value: "too long" }]))).rejects.toBeInstanceOf(
      OversizedMessageError,
    );
    s.finish();
    let pulled = 0;
    async function* messages() {
      pulled++;
      yield { value: "x" };
      pulled++;
      yield { value: "y" };
    }
    await table.send(s, StringValueSchema, messages());
    expect(pulled).toBe(1); // it looked at the first, saw the stream finished, and stopped
    table.channel.close();
  });
});

describe("the write path", () => {
  it("sends a turn's small frames in batches of 16, in order, so the peer can start before the turn ends", async () => {
    const { table, far } = await tableOnPair();
    const socket = table.channel.socket;
    const writes = vi.spyOn(socket, "write");
    const frames: number[] = [];
    const decoder = new FrameDecoder({ frame: (f) => frames.push(f.streamId), oversized: () => {} }, 1 << 20);
    far.on("data", (c: Buffer) => decoder.push(c));
    for (let i = 0; i < 40; i++) table.channel.writeFrame(2 * i + 1, MessageType.Data, 0);
    expect(writes).toHaveBeenCalledTimes(32 / 16); // two full batches left at once...
    await new Promise((r) => process.nextTick(r));
    expect(writes).toHaveBeenCalledTimes(3); // ...the other 8 at the end of the turn
    while (frames.length < 40) await new Promise((r) => far.once("data", r));
    expect(frames).toEqual(Array.from({ length: 40 }, (_, i) => 2 * i + 1));
    table.channel.close();
  });
});

async function* toAsync<T>(items: T[]) {
  yield* items;
}

describe("stream full, with a grace period (fake timers)", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  class Probe extends MessageQueue {
    fulls = 0;
    protected override full(): void {
      this.fulls++;
    }
  }
  const limits = { bufferSize: 2, maxBytes: 100, graceMs: 1000 };
  const one = Uint8Array.of(1);

  it("fails a stream whose reader stayed behind for the whole grace period, not before", () => {
    fakeTimeouts();
    const q = new Probe(limits);
    for (let i = 0; i < 3; i++) q.push(one);
    expect(q.fulls).toBe(0);
    vi.advanceTimersByTime(999);
    expect(q.fulls).toBe(0);
    vi.advanceTimersByTime(1);
    expect(q.fulls).toBe(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("spares a reader that caught up within the grace period", async () => {
    fakeTimeouts();
    const q = new Probe(limits);
    for (let i = 0; i < 3; i++) q.push(one);
    await q.next();
    vi.advanceTimersByTime(1000);
    expect(q.fulls).toBe(0);
    expect(q.length).toBe(2);
  });

  it("fails at once past the byte limit, whatever the grace period", () => {
    fakeTimeouts();
    const q = new Probe(limits);
    q.push(new Uint8Array(101));
    expect(q.fulls).toBe(1);
  });

  it("leaves no timer behind when the stream ends during the grace period", () => {
    fakeTimeouts();
    const q = new Probe(limits);
    for (let i = 0; i < 3; i++) q.push(one);
    expect(vi.getTimerCount()).toBe(1);
    q.fail(new TtrpcError("gone", Code.Canceled));
    expect(vi.getTimerCount()).toBe(0);
  });
});
