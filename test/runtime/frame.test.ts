import { describe, expect, it } from "vitest";
import { DEFAULT_MAX_MESSAGE_SIZE, FrameDecoder, encodeFrame, type Frame } from "ttrpc-es";

const hex = (s: string) =>
  Uint8Array.from(
    s
      .replace(/\s+/g, "")
      .match(/../g)!
      .map((b) => parseInt(b, 16)),
  );

function decodeAll(chunks: Uint8Array[], max = DEFAULT_MAX_MESSAGE_SIZE) {
  const frames: Frame[] = [];
  const oversized: [number, number, number, number][] = [];
  const d = new FrameDecoder(
    {
      frame: (f) => frames.push({ ...f, payload: Uint8Array.from(f.payload) }),
      oversized: (...a) => oversized.push(a),
    },
    max,
  );
  for (const c of chunks) d.push(c);
  return { frames, oversized, idle: d.idle };
}

describe("frame header", () => {
  it("encodes the examples of docs/protocol.md §2 byte for byte", () => {
    expect(encodeFrame(3, 0x03, 0x05)).toEqual(hex("00000000 00000003 03 05"));
    expect(encodeFrame(5, 0x03, 0x05)).toEqual(hex("00000000 00000005 03 05"));
    const req = encodeFrame(1, 0x01, 0x00, new Uint8Array(42));
    expect(req.subarray(0, 10)).toEqual(hex("0000002a 00000001 01 00"));
    expect(req.length).toBe(52);
  });

  it("decodes every frame kind from hand-made bytes", () => {
    const bytes = hex(
      "00000002 00000001 01 00 0a00" + // Request, unary
        "00000000 00000003 01 01" + // Request, remote closed (server streaming), empty payload
        "00000000 00000005 01 02" + // Request, remote open (client streaming / bidi)
        "00000002 00000001 02 00 0a00" + // Response, OK
        "00000001 00000003 03 00 ff" + // Data
        "00000000 00000003 03 00" + // Data, zero length: an empty message
        "00000000 00000003 03 05" + // Data, remote closed | no data
        "00000000 00000009 07 00", // unknown type
    );
    const { frames, idle } = decodeAll([bytes]);
    expect(idle).toBe(true);
    expect(frames.map((f) => [f.streamId, f.type, f.flags, [...f.payload]])).toEqual([
      [1, 1, 0, [0x0a, 0x00]],
      [3, 1, 1, []],
      [5, 1, 2, []],
      [1, 2, 0, [0x0a, 0x00]],
      [3, 3, 0, [0xff]],
      [3, 3, 0, []],
      [3, 3, 5, []],
      [9, 7, 0, []],
    ]);
  });

  it("copes with every split and coalescing of the same bytes", () => {
    const stream = new Uint8Array([
      ...encodeFrame(
        1,
        1,
        0,
        Uint8Array.from({ length: 300 }, (_, i) => i & 0xff),
      ),
      ...encodeFrame(3, 3, 0),
      ...encodeFrame(0xfffffffd, 2, 0, new Uint8Array([1, 2, 3])),
    ]);
    const want = decodeAll([stream]).frames;
    expect(want).toHaveLength(3);
    for (const size of [1, 2, 3, 7, 9, 10, 11, 64, 309, 310, 311]) {
      const chunks = [];
      for (let i = 0; i < stream.length; i += size) chunks.push(stream.subarray(i, i + size));
      const got = decodeAll(chunks);
      expect(got.frames, `chunk size ${size}`).toEqual(want);
      expect(got.idle).toBe(true);
    }
    // Every two-way split.
    for (let i = 0; i <= stream.length; i++) {
      expect(decodeAll([stream.subarray(0, i), stream.subarray(i)]).frames).toEqual(want);
    }
  });

  it("hands on a payload inside one chunk as a view, without copying", () => {
    const chunk = encodeFrame(1, 3, 0, new Uint8Array([9, 9, 9]));
    let payload: Uint8Array | undefined;
    new FrameDecoder({ frame: (f) => (payload = f.payload), oversized: () => {} }, 100).push(chunk);
    expect(payload!.buffer).toBe(chunk.buffer);
  });

  it("accepts exactly the limit and skips one byte more without buffering it", () => {
    const max = 1000;
    const ok = encodeFrame(1, 3, 0, new Uint8Array(max));
    const over = encodeFrame(3, 3, 0, new Uint8Array(max + 1));
    const after = encodeFrame(5, 3, 0, new Uint8Array([7]));
    const chunks = [ok, over.subarray(0, 500), over.subarray(500), after];
    const { frames, oversized, idle } = decodeAll(chunks, max);
    expect(frames.map((f) => [f.streamId, f.payload.length])).toEqual([
      [1, max],
      [5, 1],
    ]);
    expect(oversized).toEqual([[3, 3, 0, max + 1]]);
    expect(idle).toBe(true);
  });

  it("announcing 4 GiB allocates nothing of that size", () => {
    const seen: number[] = [];
    const d = new FrameDecoder(
      { frame: () => {}, oversized: (_id, _t, _f, len) => seen.push(len) },
      DEFAULT_MAX_MESSAGE_SIZE,
    );
    const before = process.memoryUsage().arrayBuffers;
    d.push(hex("ffffffff 00000001 03 00"));
    d.push(new Uint8Array(1 << 20));
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 << 20);
    expect(d.idle).toBe(false);
    expect(seen).toEqual([]);
  });

  it("reports a truncated frame: not idle mid-header or mid-payload", () => {
    expect(decodeAll([hex("00000005 0000")]).idle).toBe(false);
    expect(decodeAll([hex("00000005 00000001 03 00 0102")]).idle).toBe(false);
  });

  it("skips, unread, the frames its owner does not want, in any split", () => {
    const stream = new Uint8Array([
      ...encodeFrame(1, 3, 0, new Uint8Array(5000).fill(1)),
      ...encodeFrame(3, 3, 0, new Uint8Array([2, 2])),
      ...encodeFrame(1, 3, 0, new Uint8Array(0)),
      ...encodeFrame(5, 2, 0, new Uint8Array([5])),
    ]);
    for (const size of [1, 7, 100, stream.length]) {
      const got: [number, number][] = [];
      const d = new FrameDecoder(
        {
          frame: (f) => got.push([f.streamId, f.payload.length]),
          oversized: () => got.push([-1, -1]),
          wants: (id) => id !== 1,
        },
        DEFAULT_MAX_MESSAGE_SIZE,
      );
      for (let i = 0; i < stream.length; i += size) d.push(stream.subarray(i, i + size));
      // An empty frame costs nothing to hand on: only frames with bytes are skipped.
      expect(got, `chunk size ${size}`).toEqual([
        [3, 2],
        [1, 0],
        [5, 1],
      ]);
      expect(d.idle).toBe(true);
    }
  });
});
