// The memory stream's frames on and off a socket (frame-io.ts): `write` puts
// one frame on the wire and waits for 'drain' only when the socket asks it
// to; FrameReader and DirectFrameReader read frames back however the bytes
// are cut into chunks, refuse a bad header, turn the socket's end or error
// into a WireError, and the direct reader puts the pages of a Pages frame
// into the sink's memory. Real connected unix sockets throughout; the peer
// writes raw bytes, so each test decides where a chunk ends.
import type { OnReadOpts, Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { DirectFrameReader, FrameReader, type PageSink, write } from "../../src/migration/simulated/frame-io.js";
import {
  encodeFrame,
  encodePagesHead,
  encodePassEnd,
  FRAME_HEADER,
  MessageType,
  WIRE_VERSION,
  WireError,
} from "../../src/migration/simulated/wire-protocol.js";
import { rejection, unixSocketPair } from "../common.js";

const MAX_PAYLOAD = 1 << 20;

/** Everything `socket` receives, and a wait for the total to reach `n` bytes. */
function collect(socket: Socket) {
  const chunks: Buffer[] = [];
  let total = 0;
  let waiters: { n: number; resolve: () => void }[] = [];
  socket.on("data", (c: Buffer) => {
    chunks.push(c);
    total += c.length;
    waiters = waiters.filter((w) => (total >= w.n ? (w.resolve(), false) : true));
  });
  return {
    bytes: () => Buffer.concat(chunks),
    /** Resolves once `n` bytes in all have arrived (listeners added before this one saw them first). */
    reached: (n: number) => new Promise<void>((resolve) => (total >= n ? resolve() : waiters.push({ n, resolve }))),
  };
}

/** A frame header claiming `length` payload bytes; version and type as given. */
function header(type: number, length: number, version = WIRE_VERSION): Buffer {
  const h = Buffer.alloc(FRAME_HEADER);
  h[0] = version;
  h[1] = type;
  h.writeUInt32BE(length, 2);
  return h;
}

/** Awaits `p`'s rejection: a WireError with `message`. */
async function expectWireError(p: Promise<unknown>, message: string): Promise<void> {
  expect((await rejection(p, WireError)).message).toBe(message);
}

/** Frame headers both readers refuse at a 16-byte payload limit, and the message they refuse each with. */
const BAD_HEADERS = [
  ["another protocol version", header(MessageType.Ready, 0, 1), "memory stream: unsupported protocol version 1"],
  ["message type 0", header(0, 0), "memory stream: unknown message type 0"],
  ["message type 17", header(17, 0), "memory stream: unknown message type 17"],
  [
    "a payload over the limit",
    header(MessageType.DeviceState, 17),
    "memory stream: frame of 17 bytes is over the 16-byte limit",
  ],
] as const;

describe("write", () => {
  it("sends one buffer and needs no wait while the socket takes it", async () => {
    const [dialed, accepted] = await unixSocketPair();
    const got = collect(accepted);
    const frame = encodePassEnd({ pass: 3, last: false });
    expect(write(dialed, frame)).toBeUndefined();
    await got.reached(frame.length);
    expect(got.bytes()).toEqual(frame);
  });

  it("sends several buffers back to back, in order, and needs no wait for none at all", async () => {
    const [dialed, accepted] = await unixSocketPair();
    const got = collect(accepted);
    const parts = [header(MessageType.DeviceState, 5), Buffer.from("ab"), Buffer.from("cde")];
    expect(write(dialed, ...parts)).toBeUndefined();
    expect(write(dialed)).toBeUndefined();
    await got.reached(11);
    expect(got.bytes()).toEqual(Buffer.concat(parts));
  });

  it("a single buffer the socket writes at once needs no wait, even past its high-water mark", async () => {
    const [dialed, accepted] = await unixSocketPair();
    const got = collect(accepted);
    const big = Buffer.alloc(dialed.writableHighWaterMark + 1, 3);
    // Written straight through (the peer's kernel buffer has room): nothing is left buffered to drain.
    expect(write(dialed, big)).toBeUndefined();
    await got.reached(big.length);
    expect(got.bytes()).toEqual(big);
  });

  it("several buffers past the socket's high-water mark (buffered while corked) resolve on 'drain', and take their listeners back off", async () => {
    const [dialed, accepted] = await unixSocketPair();
    const got = collect(accepted);
    const big = Buffer.alloc(dialed.writableHighWaterMark + 1, 7);
    const before = [dialed.listenerCount("drain"), dialed.listenerCount("close")];
    const pending = write(dialed, header(MessageType.DeviceState, big.length), big);
    expect(pending).toBeInstanceOf(Promise);
    await pending;
    expect([dialed.listenerCount("drain"), dialed.listenerCount("close")]).toEqual(before);
    await got.reached(FRAME_HEADER + big.length);
    expect(got.bytes().subarray(FRAME_HEADER)).toEqual(big);
  });

  it("rejects with a WireError when the socket closes before it drains, and takes its listeners back off", async () => {
    const [dialed] = await unixSocketPair();
    const before = [dialed.listenerCount("drain"), dialed.listenerCount("close")];
    const big = Buffer.alloc(dialed.writableHighWaterMark + 1);
    const pending = write(dialed, header(MessageType.DeviceState, big.length), big);
    expect(pending).toBeInstanceOf(Promise);
    dialed.destroy();
    await expectWireError(pending!, "memory-transfer connection closed");
    expect([dialed.listenerCount("drain"), dialed.listenerCount("close")]).toEqual(before);
  });

  it("rejects with a WireError on a socket already destroyed", async () => {
    const [dialed] = await unixSocketPair();
    // Closed all the way: no 'close' is left to come that a waiting write could still see.
    const closed = new Promise((resolve) => dialed.once("close", resolve));
    dialed.destroy();
    await closed;
    const pending = write(dialed, encodePassEnd({ pass: 1, last: true }));
    expect(pending).toBeInstanceOf(Promise);
    await expectWireError(pending!, "memory-transfer connection closed");
  });
});

describe("FrameReader", () => {
  it("reads two frames that arrive in one chunk, each with its own payload", async () => {
    const [dialed, accepted] = await unixSocketPair();
    const reader = new FrameReader(accepted, { maxPayload: MAX_PAYLOAD });
    dialed.write(
      Buffer.concat([encodePassEnd({ pass: 9, last: true }), encodeFrame(MessageType.DeviceState, Buffer.from("[1]"))]),
    );
    const first = await reader.next();
    expect([first.type, first.length, first.payload]).toEqual([MessageType.PassEnd, 5, Buffer.from([0, 0, 0, 9, 1])]);
    const second = await reader.next();
    expect([second.type, second.length, second.payload]).toEqual([MessageType.DeviceState, 3, Buffer.from("[1]")]);
  });

  it("reads a frame whose header and payload arrive in pieces, waiting for each", async () => {
    const [dialed, accepted] = await unixSocketPair();
    const reader = new FrameReader(accepted, { maxPayload: MAX_PAYLOAD });
    const got = collect(accepted);
    const payload = Buffer.from("0123456789");
    const wire = Buffer.concat([header(MessageType.DeviceState, payload.length), payload]);
    const frame = reader.next();
    // Cut in the header, then in the payload: each piece has arrived before the next is sent.
    for (const [from, to] of [
      [0, 3],
      [3, 8],
      [8, 12],
      [12, wire.length],
    ] as const) {
      dialed.write(wire.subarray(from, to));
      await got.reached(to);
    }
    const f = await frame;
    expect([f.type, f.length, f.payload]).toEqual([MessageType.DeviceState, 10, payload]);
  });

  it("returns an empty frame that ends where the peer's data ends, then fails on the peer's end", async () => {
    const [dialed, accepted] = await unixSocketPair();
    const reader = new FrameReader(accepted, { maxPayload: MAX_PAYLOAD });
    dialed.end(encodeFrame(MessageType.Ready));
    const ready = await reader.next();
    expect([ready.type, ready.payload.length]).toEqual([MessageType.Ready, 0]);
    await expectWireError(reader.next(), "memory-transfer connection closed by the peer");
  });

  it("takes a frame of exactly the payload limit", async () => {
    const [dialed, accepted] = await unixSocketPair();
    const reader = new FrameReader(accepted, { maxPayload: 16 });
    dialed.write(encodeFrame(MessageType.DeviceState, Buffer.alloc(16, 0x31)));
    expect((await reader.next()).payload).toEqual(Buffer.alloc(16, 0x31));
  });

  it.each(BAD_HEADERS)("refuses %s", async (_, bad, message) => {
    const [dialed, accepted] = await unixSocketPair();
    const reader = new FrameReader(accepted, { maxPayload: 16 });
    dialed.write(bad);
    await expectWireError(reader.next(), message);
  });

  it("fails a waiting read when the peer ends a half-open connection", async () => {
    const [dialed, accepted] = await unixSocketPair({ allowHalfOpen: true });
    const reader = new FrameReader(accepted, { maxPayload: MAX_PAYLOAD });
    const next = reader.next();
    dialed.end();
    await expectWireError(next, "memory-transfer connection closed by the peer");
    expect(accepted.destroyed).toBe(false);
  });

  it("fails a waiting read when the socket closes", async () => {
    const [, accepted] = await unixSocketPair();
    const reader = new FrameReader(accepted, { maxPayload: MAX_PAYLOAD });
    const next = reader.next();
    accepted.destroy();
    await expectWireError(next, "memory-transfer connection closed by the peer");
  });

  it("fails with the socket's error, which stays the reason after the close that follows", async () => {
    const [, accepted] = await unixSocketPair();
    const reader = new FrameReader(accepted, { maxPayload: MAX_PAYLOAD });
    const next = reader.next();
    const closed = new Promise((resolve) => accepted.once("close", resolve));
    accepted.destroy(new Error("boom"));
    await expectWireError(next, "memory-transfer connection failed: boom");
    await closed;
    await expectWireError(reader.next(), "memory-transfer connection failed: boom");
  });

  it("pauses the socket once more than 16 MiB waits unread, and resumes it as the reader catches up", async () => {
    const [dialed, accepted] = await unixSocketPair();
    const reader = new FrameReader(accepted, { maxPayload: 32 << 20 });
    const payload = Buffer.alloc(17 << 20, 5);
    const total = FRAME_HEADER + payload.length;
    let received = 0;
    let pausedAt: number | undefined;
    const stopped = new Promise<void>((resolve) =>
      // Added after the reader's own listener: sees each chunk after the reader took it.
      accepted.on("data", (c: Buffer) => {
        received += c.length;
        if (pausedAt === undefined && accepted.isPaused()) {
          pausedAt = received;
          resolve();
        }
        if (received === total) resolve();
      }),
    );
    dialed.write(header(MessageType.DeviceState, payload.length));
    dialed.write(payload);
    await stopped;
    expect(pausedAt).toBeGreaterThan(16 << 20);
    expect(pausedAt).toBeLessThan(total);
    const frame = await reader.next();
    expect(frame.length).toBe(payload.length);
    expect(accepted.isPaused()).toBe(false);
  });
});

/** A DirectFrameReader on a dialed socket, and a wait for it to have consumed `n` bytes in all. */
async function directPair(opts: { maxPayload?: number; halfOpen?: boolean; sink?: PageSink } = {}) {
  const reader = new DirectFrameReader({ maxPayload: opts.maxPayload ?? MAX_PAYLOAD });
  if (opts.sink !== undefined) reader.sink = opts.sink;
  let consumed = 0;
  let waiters: { n: number; resolve: () => void }[] = [];
  // Passes every read through to the reader; counts the bytes so the test knows when a piece was taken.
  const onread: OnReadOpts = {
    buffer: () => reader.onread.buffer(),
    callback: (n: number) => {
      const more = reader.onread.callback(n);
      consumed += n;
      waiters = waiters.filter((w) => (consumed >= w.n ? (w.resolve(), false) : true));
      return more;
    },
  };
  const [dialed, accepted] = await unixSocketPair({ onread, allowHalfOpen: opts.halfOpen ?? false });
  reader.attach(dialed);
  const consumedUpTo = (n: number) =>
    new Promise<void>((resolve) => (consumed >= n ? resolve() : waiters.push({ n, resolve })));
  return { reader, socket: dialed, peer: accepted, consumedUpTo };
}

/** Memory of `pageCount` pages; views one per page, or one per run when `perRun`. */
function memorySink(pageSize: number, pageCount: number, opts: { perRun?: boolean; sumBytes?: number } = {}) {
  const memory = Buffer.alloc(pageSize * pageCount);
  const sink: PageSink = {
    pageSize,
    pageCount,
    sumBytes: (pages) => pages * (opts.sumBytes ?? 0),
    views: (first, count) =>
      opts.perRun
        ? [memory.subarray(first * pageSize, (first + count) * pageSize)]
        : Array.from({ length: count }, (_, k) => memory.subarray((first + k) * pageSize, (first + k + 1) * pageSize)),
  };
  return { memory, sink };
}

/** A Pages frame: its head (header and run list, `sums` after it), then the pages. */
function pagesFrame(runs: number[], pages: Buffer[], sums = Buffer.alloc(0)): Buffer {
  const data = pages.reduce((n, p) => n + p.length, 0);
  const { head, sumsAt } = encodePagesHead(MessageType.Pages, runs, sums.length, data);
  sums.copy(head, sumsAt);
  return Buffer.concat([head, ...pages]);
}

describe("DirectFrameReader", () => {
  it("reads frames cut into pieces, and a Pages frame whole when there is no sink", async () => {
    const { reader, peer, consumedUpTo } = await directPair();
    const state = encodeFrame(MessageType.DeviceState, Buffer.from('{"a":1}'));
    const pages = pagesFrame([0, 1], [Buffer.alloc(8, 9)]);
    const wire = Buffer.concat([state, pages]);
    /** Sends the bytes up to each cut, each taken by the reader before the next is sent. */
    let from = 0;
    const send = async (...cuts: number[]) => {
      for (const to of cuts) {
        peer.write(wire.subarray(from, to));
        await consumedUpTo(to);
        from = to;
      }
    };
    // Cut in the first header and payload, then in the second frame's run list.
    const a = reader.next();
    await send(2, 9, state.length);
    const first = await a;
    expect([first.type, first.payload.toString()]).toEqual([MessageType.DeviceState, '{"a":1}']);
    const b = reader.next();
    await send(state.length + 10, wire.length);
    const f = await b;
    expect([f.type, f.placed, f.payload]).toEqual([MessageType.Pages, false, pages.subarray(FRAME_HEADER)]);
  });

  it("takes a frame of exactly the payload limit", async () => {
    const { reader, peer } = await directPair({ maxPayload: 16 });
    peer.write(encodeFrame(MessageType.DeviceState, Buffer.alloc(16, 0x32)));
    expect((await reader.next()).payload).toEqual(Buffer.alloc(16, 0x32));
  });

  it.each(BAD_HEADERS)("refuses %s and closes the connection", async (_, bad, message) => {
    const { reader, socket, peer } = await directPair({ maxPayload: 16 });
    peer.write(bad);
    await expectWireError(reader.next(), message);
    expect(socket.destroyed).toBe(true);
  });

  it("after a refused frame asks for no more reads, and lets later bytes fall on its spare header", () => {
    // Driven through its onread interface directly: on a real socket the reader has destroyed the
    // socket by then, so no later read would show what it answers.
    const reader = new DirectFrameReader({ maxPayload: 16 });
    const bad = header(MessageType.Ready, 0, 9);
    bad.copy(reader.onread.buffer());
    expect(reader.onread.callback(bad.length)).toBe(true);
    const spare = reader.onread.buffer();
    expect(spare.length).toBe(FRAME_HEADER);
    expect(reader.onread.callback(3)).toBe(false);
    expect(reader.onread.buffer()).toBe(spare);
  });

  it("a sink's RangeError fails the read as a WireError and closes the connection", async () => {
    const { sink } = memorySink(8, 4);
    const refusing: PageSink = {
      ...sink,
      views: () => {
        throw new RangeError("pages 1 … 2 are not mapped");
      },
    };
    const { reader, socket, peer } = await directPair({ sink: refusing });
    peer.write(pagesFrame([1, 2], [Buffer.alloc(16)]));
    await expectWireError(reader.next(), "memory stream: pages 1 … 2 are not mapped");
    expect(socket.destroyed).toBe(true);
  });

  it("with a sink, reads other frames whole, and a Pages frame too short for a run count as it came", async () => {
    const { memory, sink } = memorySink(8, 4);
    const { reader, peer } = await directPair({ sink });
    const passEnd = encodePassEnd({ pass: 2, last: false });
    peer.write(
      Buffer.concat([passEnd, encodeFrame(MessageType.Pages, Buffer.from([1, 2])), encodeFrame(MessageType.Ready)]),
    );
    const a = await reader.next();
    expect([a.type, a.payload]).toEqual([MessageType.PassEnd, passEnd.subarray(FRAME_HEADER)]);
    const b = await reader.next();
    expect([b.type, b.placed, b.payload]).toEqual([MessageType.Pages, false, Buffer.from([1, 2])]);
    expect((await reader.next()).type).toBe(MessageType.Ready);
    expect(memory.every((x) => x === 0)).toBe(true);
  });

  it.each([
    ["a run list of no runs", Buffer.from([0, 0, 0, 0]), "memory stream: a run list of 4 bytes with 0 runs"],
    [
      "a run count beyond the frame's end",
      Buffer.from([0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1]),
      "memory stream: Pages frame of 12 bytes",
    ],
    [
      "a length that is not its pages'",
      Buffer.concat([Buffer.from([0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]), Buffer.alloc(16)]),
      "memory stream: Pages frame of 28 bytes does not hold 1 pages",
    ],
  ])("with a sink, refuses a Pages frame with %s", async (_, payload, message) => {
    const { sink } = memorySink(8, 4);
    const { reader, peer } = await directPair({ sink });
    peer.write(encodeFrame(MessageType.Pages, payload));
    await expectWireError(reader.next(), message);
  });

  it("places pages with their checksums: the frame keeps the run list and the sums", async () => {
    const { memory, sink } = memorySink(8, 4, { sumBytes: 4 });
    const { reader, peer } = await directPair({ sink });
    const sums = Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]);
    const wire = pagesFrame([1, 1, 3, 1], [Buffer.alloc(8, 0xa1), Buffer.alloc(8, 0xa3)], sums);
    peer.write(wire);
    const f = await reader.next();
    expect([f.type, f.placed]).toEqual([MessageType.Pages, true]);
    expect(f.payload).toEqual(wire.subarray(FRAME_HEADER, FRAME_HEADER + 20 + 8));
    expect(f.payload.subarray(20)).toEqual(sums);
    expect(memory).toEqual(
      Buffer.concat([Buffer.alloc(8), Buffer.alloc(8, 0xa1), Buffer.alloc(8), Buffer.alloc(8, 0xa3)]),
    );
  });

  // How pages land: into the sink's views as they arrive when the views are large (or one), through a
  // scratch buffer copied at the frame's end when there are many small ones. Seen half-way through a frame.
  it.each([
    ["one view per run", 8, true, true],
    ["many small views", 8, false, false],
    ["many views of 32 KiB", 32 * 1024, false, false],
    ["many views of 64 KiB", 64 * 1024, false, true],
  ] as const)(
    "with %s, whether the first page is in memory before the frame's end",
    async (_, pageSize, perRun, early) => {
      const { memory, sink } = memorySink(pageSize, 2, { perRun });
      const { reader, peer, consumedUpTo } = await directPair({ sink });
      const wire = pagesFrame([0, 2], [Buffer.alloc(pageSize, 1), Buffer.alloc(pageSize, 2)]);
      const half = wire.length - pageSize;
      const frame = reader.next();
      peer.write(wire.subarray(0, half));
      await consumedUpTo(half);
      expect(memory.subarray(0, pageSize).every((x) => x === 1)).toBe(early);
      peer.write(wire.subarray(half));
      expect((await frame).placed).toBe(true);
      expect(memory).toEqual(Buffer.concat([Buffer.alloc(pageSize, 1), Buffer.alloc(pageSize, 2)]));
    },
  );

  it("fails a waiting read when the peer ends a half-open connection", async () => {
    const { reader, socket, peer } = await directPair({ halfOpen: true });
    const next = reader.next();
    peer.end();
    await expectWireError(next, "memory-transfer connection closed by the peer");
    expect(socket.destroyed).toBe(false);
  });

  it("fails a waiting read when the socket closes", async () => {
    const { reader, socket } = await directPair();
    const next = reader.next();
    socket.destroy();
    await expectWireError(next, "memory-transfer connection closed by the peer");
  });

  it("fails with the socket's error, which stays the reason after the close that follows", async () => {
    const { reader, socket } = await directPair();
    const next = reader.next();
    const closed = new Promise((resolve) => socket.once("close", resolve));
    socket.destroy(new Error("boom"));
    await expectWireError(next, "memory-transfer connection failed: boom");
    await closed;
    await expectWireError(reader.next(), "memory-transfer connection failed: boom");
  });
});
