import { describe, expect, it } from "vitest";
import { createMultiplexer } from "../../src/nri/multiplexer.js";
import { encodeMuxHeader, MAX_MUX_PAYLOAD, MuxFrameError } from "../../src/nri/mux-frame.js";
import { duplexPair } from "./duplex-pair.js";

const frame = (id: number, payload: Uint8Array) => Buffer.concat([encodeMuxHeader(id, payload.length), payload]);

describe("multiplexer", () => {
  it("writes Go's wire format: uint32 BE id, uint32 BE length, payload; opening sends nothing", async () => {
    const [a, b] = duplexPair();
    const mux = createMultiplexer(a);
    const seen: Buffer[] = [];
    b.on("data", (c: Buffer) => seen.push(c));
    mux.open(2);
    // The first frame's arrival ends the wait: had open() sent anything, it would come before.
    await new Promise<void>((r) => mux.open(2).write(Buffer.from("hi"), () => r()));
    expect(Buffer.concat(seen)).toEqual(Buffer.from([0, 0, 0, 2, 0, 0, 0, 2, 0x68, 0x69]));
    mux.close();
    b.destroy();
  });

  it("refuses the reserved id 0 and ids out of range", () => {
    const [a, b] = duplexPair();
    const mux = createMultiplexer(a);
    expect(() => mux.open(0)).toThrow(RangeError);
    expect(() => mux.open(2 ** 32)).toThrow(RangeError);
    mux.close();
    b.destroy();
  });

  it("a frame announcing more than 16 MiB closes the trunk with a MuxFrameError", async () => {
    const [a, b] = duplexPair();
    const mux = createMultiplexer(a);
    const conn = mux.open(1);
    const failed = new Promise<Error>((r) => conn.once("error", r));
    b.write(encodeMuxHeader(1, MAX_MUX_PAYLOAD + 1));
    const err = await mux.done;
    expect(err).toBeInstanceOf(MuxFrameError);
    expect(err?.message).toMatch(/over the 16777216-byte limit/);
    expect(await failed).toBe(err);
    b.destroy();
  });

  it("frames beyond the read queue length close the trunk (Go: failed to queue payload)", async () => {
    const [a, b] = duplexPair();
    const mux = createMultiplexer(a, { readQueueLength: 3 });
    const conn = mux.open(1);
    conn.pause();
    conn.on("error", () => {});
    for (let i = 0; i < 4; i++) b.write(frame(1, Buffer.from([i])));
    const err = await mux.done;
    expect(err).toBeInstanceOf(MuxFrameError);
    expect(err?.message).toMatch(/read queue of connection 1 overflowed \(3 frames\)/);
    b.destroy();
  });

  it("a reader that keeps up never overflows, however many frames come", async () => {
    const [a, b] = duplexPair();
    const mux = createMultiplexer(a, { readQueueLength: 2 });
    const conn = mux.open(1);
    let got = 0;
    conn.on("data", (c: Buffer) => {
      got += c.length;
    });
    for (let i = 0; i < 100; i++) {
      b.write(frame(1, Buffer.from([i])));
      await new Promise<void>((r) => setImmediate(r));
    }
    b.end();
    expect(await mux.done).toBeUndefined();
    expect(got).toBe(100);
  });

  it("a trunk that ends inside a frame fails every connection; a clean end is EOF", async () => {
    const [a, b] = duplexPair();
    const mux = createMultiplexer(a);
    const conn = mux.open(1);
    const failed = new Promise<Error>((r) => conn.once("error", r));
    b.write(frame(1, Buffer.alloc(10)).subarray(0, 12));
    b.end();
    expect((await failed).message).toMatch(/trunk ended inside a frame/);
  });

  it("frames for connections nobody opened are dropped; the others still flow", async () => {
    const [a, b] = duplexPair();
    const mux = createMultiplexer(a);
    const conn = mux.open(2);
    const parts: Buffer[] = [];
    conn.on("data", (c: Buffer) => parts.push(c));
    b.write(
      Buffer.concat([frame(5, Buffer.from("lost")), frame(0, Buffer.from("reserved")), frame(2, Buffer.from("ok"))]),
    );
    b.end();
    await new Promise<void>((r) => conn.once("end", r));
    expect(Buffer.concat(parts).toString()).toBe("ok");
    expect(await mux.done).toBeUndefined();
  });

  it("a paused reader's frames wait in order, a frame still arriving is handed on in parts and keeps its slot", async () => {
    const [a, b] = duplexPair();
    const mux = createMultiplexer(a, { readQueueLength: 2 });
    const conn = mux.open(1);
    conn.pause();
    const got: string[] = [];
    const ended = new Promise<void>((r) => conn.once("end", r));
    let waiting: { count: number; resolve: () => void } | undefined;
    conn.on("data", (c: Buffer) => {
      got.push(c.toString());
      if (waiting !== undefined && got.length >= waiting.count) waiting.resolve();
    });
    const untilParts = (count: number) => new Promise<void>((resolve) => (waiting = { count, resolve }));
    const whole = frame(1, Buffer.from("BBBB"));
    // One whole frame and half of the next: both slots taken, nothing read.
    b.write(Buffer.concat([frame(1, Buffer.from("A")), whole.subarray(0, 10)]));
    let seen = untilParts(2);
    conn.resume();
    await seen;
    expect(got).toEqual(["A", "BB"]);
    // The rest of B goes into B's slot, so C and D fit the queue of two.
    seen = untilParts(3);
    b.write(whole.subarray(10));
    await seen;
    b.write(Buffer.concat([frame(1, Buffer.from("C")), frame(1, Buffer.from("D"))]));
    b.end();
    expect(await mux.done).toBeUndefined();
    await ended;
    expect(got).toEqual(["A", "BB", "BB", "C", "D"]);
  });

  it("a clean end delivers what a paused reader had not read yet, then EOF", async () => {
    const [a, b] = duplexPair();
    const mux = createMultiplexer(a, { readQueueLength: 4 });
    const conn = mux.open(1);
    conn.pause();
    b.write(Buffer.concat([frame(1, Buffer.from("one")), frame(1, Buffer.from("two"))]));
    b.end();
    expect(await mux.done).toBeUndefined();
    const parts: Buffer[] = [];
    conn.on("data", (c: Buffer) => parts.push(c));
    conn.resume();
    await new Promise<void>((r) => conn.once("end", r));
    expect(Buffer.concat(parts).toString()).toBe("onetwo");
  });

  it("a connection left open after a clean end fails its writes with a MuxFrameError", async () => {
    const [a, b] = duplexPair();
    const mux = createMultiplexer(a);
    // Paused: its reading side has not seen EOF yet, so its writing side is still open.
    const conn = mux.open(1);
    conn.pause();
    b.end();
    expect(await mux.done).toBeUndefined();
    // The stream reports a failed write twice: to the write's callback and as its error event.
    const emitted = new Promise<Error>((r) => conn.once("error", r));
    const err = await new Promise<Error | null | undefined>((r) => conn.write(Buffer.from("late"), r));
    expect(err).toBeInstanceOf(MuxFrameError);
    expect(err?.message).toBe("nri mux: closed");
    expect(await emitted).toBe(err);
  });

  it("closing the mux ends every connection; writing afterwards fails cleanly", async () => {
    const [a, b] = duplexPair();
    const mux = createMultiplexer(a);
    const conn = mux.open(1);
    conn.resume();
    const ended = new Promise<void>((r) => conn.once("close", r));
    mux.close();
    await ended;
    expect(mux.closed).toBe(true);
    expect(() => mux.open(1)).toThrow(MuxFrameError);
    b.destroy();
  });
});
