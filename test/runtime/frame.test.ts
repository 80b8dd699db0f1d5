import { describe, expect, it } from "vitest";
import { DEFAULT_MAX_MESSAGE_SIZE, FrameDecoder, encodeFrame, type Frame } from "ttrpc-es";
import { writeHeader } from "../../src/frame.js";

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

  it("writes all four bytes of length and stream ID big-endian, at any offset", () => {
    // IDs past 2^24 (a long-lived connection's): every byte of the ID counts.
    expect(encodeFrame(0x7f020305, 0x02, 0x00)).toEqual(hex("00000000 7f020305 02 00"));
    const buf = new Uint8Array(13).fill(0xee);
    writeHeader(buf, 3, 0x0a0b0c0d, 0x7f020305, 0x03, 0x05);
    expect(buf).toEqual(hex("eeeeee 0a0b0c0d 7f020305 03 05"));
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

// Reads as a socket made with `onread` does them: each read lands in the
// buffer the decoder names, up to `sizes()` bytes of what the wire holds.
function decodeDirect(wire: Uint8Array, sizes: () => number, max = DEFAULT_MAX_MESSAGE_SIZE) {
  const frames: Frame[] = [];
  const oversized: number[] = [];
  const targets: Uint8Array[] = [];
  const d = new FrameDecoder(
    { frame: (f) => frames.push(f), oversized: (id) => oversized.push(id), wants: (id) => id !== 99 },
    max,
  );
  let pos = 0;
  while (pos < wire.length) {
    const target = d.readTarget();
    targets.push(target);
    const n = Math.min(target.length, sizes(), wire.length - pos);
    target.set(wire.subarray(pos, pos + n));
    pos += n;
    d.filled(n);
  }
  return { frames, oversized, targets, idle: d.idle };
}

// Read sizes from 0 to max - 1, the same every run.
function randomSizes(seed: number, max: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return x % max;
  };
}

// Byte-wise equality without the test runner's element-by-element diff of megabytes.
const same = (a: Uint8Array[], b: Uint8Array[]) =>
  a.length === b.length && a.every((x, i) => Buffer.compare(x, b[i]!) === 0);

describe("frame decoder, reads that land where it says", () => {
  const payload = (len: number, seed: number) => {
    const p = new Uint8Array(len);
    for (let i = 0; i < len; i++) p[i] = (i * 31 + seed) & 0xff;
    return p;
  };
  const sizes = [0, 1, 9, 10, 300, 16 * 1024 - 1, 16 * 1024, 20_000, 64 * 1024, 65 * 1024, 100_000];
  const frames = sizes.flatMap((len, i) => [
    encodeFrame(2 * i + 1, 2, 0, payload(len, i)),
    encodeFrame(2 * i + 3, 3, 1, payload(5, i)), // a small one behind each
  ]);
  frames.push(encodeFrame(99, 3, 0, payload(40_000, 7))); // nobody wants it: skipped unread
  frames.push(encodeFrame(101, 2, 0, payload(300_000, 8))); // over the limit below: skipped
  frames.push(encodeFrame(103, 2, 0, payload(3, 9)));
  const wire = Buffer.concat(frames);
  const expected = [...sizes.flatMap((len, i) => [payload(len, i), payload(5, i)]), payload(3, 9)];

  for (const [name, gen] of [
    ["whole reads", () => Number.MAX_SAFE_INTEGER],
    ["1-byte reads", () => 1],
    ["7-byte reads", () => 7],
    ["pseudo-random reads", randomSizes(42, 70_000)],
  ] as const) {
    it(`hands on every frame intact with ${name}, even after the scratch buffer was read into again`, () => {
      const r = decodeDirect(wire, gen, 256 * 1024);
      expect(r.frames.map((f) => f.payload.length)).toEqual(expected.map((p) => p.length));
      expect(
        same(
          r.frames.map((f) => f.payload),
          expected,
        ),
      ).toBe(true);
      expect(r.oversized).toEqual([101]);
      expect(r.idle).toBe(true);
    });
  }

  it("reads a big payload's rest straight into the payload handed on (no copy)", () => {
    const big = payload(300_000, 1);
    const r = decodeDirect(encodeFrame(1, 2, 0, big), () => Number.MAX_SAFE_INTEGER);
    expect(same([r.frames[0]!.payload], [big])).toBe(true);
    expect(r.targets.some((t) => t.buffer === r.frames[0]!.payload.buffer)).toBe(true);
  });

  it("reads into 2 KiB of Node's pool until a read fills them, then into 64 KiB of its own", () => {
    const small = Array.from({ length: 100 }, (_, i) => encodeFrame(1001 + 2 * i, 2, 0, payload(300, i)));
    const r = decodeDirect(Buffer.concat(small), () => Number.MAX_SAFE_INTEGER);
    expect(r.targets.slice(0, 2).map((t) => t.length)).toEqual([2 * 1024, 64 * 1024]);
    expect(r.targets[0]!.buffer.byteLength).toBe(Buffer.poolSize);
    expect(
      same(
        r.frames.map((f) => f.payload),
        Array.from({ length: 100 }, (_, i) => payload(300, i)),
      ),
    ).toBe(true);
  });

  it("after a big frame reads only the next header, so the next big payload lands in place too", () => {
    const r = decodeDirect(
      Buffer.concat([encodeFrame(1, 2, 0, payload(70_000, 1)), encodeFrame(3, 2, 0, payload(70_000, 2))]),
      () => Number.MAX_SAFE_INTEGER,
    );
    expect(r.targets.map((t) => t.length)).toEqual([2 * 1024, 70_000 + 10 - 2 * 1024, 10, 70_000]);
    expect(
      same(
        r.frames.map((f) => f.payload),
        [payload(70_000, 1), payload(70_000, 2)],
      ),
    ).toBe(true);
  });
});
