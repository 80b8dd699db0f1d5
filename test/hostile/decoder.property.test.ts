// Property-based tests of the frame decoder: any split of any byte sequence
// decodes exactly as a whole-buffer reference parser says, nothing throws, and
// nothing is ever allocated from an announced length over the limit.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DEFAULT_MAX_MESSAGE_SIZE, FrameDecoder, HEADER_LENGTH, encodeFrame } from "ttrpc-es";
import { checkLeaksAfterAll } from "../leak-check.js";
import { assertMost, fuzzParams, fuzzTimeout } from "./fuzz-config.js";

checkLeaksAfterAll();

type Event = ["frame", number, number, number, string] | ["oversized", number, number, number, number];

const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
const u32 = (b: Uint8Array, o: number) => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;

/** The reference: parse the whole buffer at once, the obvious way. */
function reference(bytes: Uint8Array, max: number): { events: Event[]; idle: boolean } {
  const events: Event[] = [];
  let pos = 0;
  while (bytes.length - pos >= HEADER_LENGTH) {
    const len = u32(bytes, pos);
    const id = u32(bytes, pos + 4);
    const type = bytes[pos + 8]!;
    const flags = bytes[pos + 9]!;
    if (bytes.length - pos - HEADER_LENGTH < len) return { events, idle: false };
    pos += HEADER_LENGTH;
    if (len > max) events.push(["oversized", id, type, flags, len]);
    else events.push(["frame", id, type, flags, hex(bytes.subarray(pos, pos + len))]);
    pos += len;
  }
  return { events, idle: pos === bytes.length };
}

function decodeChunks(chunks: Uint8Array[], max: number): { events: Event[]; idle: boolean } {
  const events: Event[] = [];
  const d = new FrameDecoder(
    {
      frame: (f) => events.push(["frame", f.streamId, f.type, f.flags, hex(f.payload)]),
      oversized: (id, type, flags, len) => events.push(["oversized", id, type, flags, len]),
    },
    max,
  );
  for (const c of chunks) d.push(c);
  return { events, idle: d.idle };
}

/** Cuts `bytes` at the given points (taken modulo its length): every split and coalescing. */
function split(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => (bytes.length === 0 ? 0 : c % (bytes.length + 1))))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let last = 0;
  for (const p of points) {
    out.push(bytes.subarray(last, p));
    last = p;
  }
  out.push(bytes.subarray(last));
  return out;
}

const concat = (parts: Uint8Array[]) => Uint8Array.from(Buffer.concat(parts));

const MAX = 64;
const streamId = fc.oneof(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 0, max: 0xffffffff }));
const byte = fc.integer({ min: 0, max: 255 });

/** A well-formed frame, sometimes over MAX (to be skipped). */
const validFrame = fc
  .record({ id: streamId, type: byte, flags: byte, payload: fc.uint8Array({ maxLength: MAX + 40 }) })
  .map(({ id, type, flags, payload }) => encodeFrame(id, type, flags, payload));

/** A header announcing any length (often huge), followed by whatever comes next. */
const bareHeader = fc
  .record({
    len: fc.oneof(
      fc.integer({ min: 0, max: MAX * 2 }),
      fc.integer({ min: 0, max: 0xffffffff }),
      fc.constant(0xffffffff),
    ),
    id: streamId,
    type: byte,
    flags: byte,
  })
  .map(({ len, id, type, flags }) => {
    const h = encodeFrame(id, type, flags);
    new DataView(h.buffer).setUint32(0, len);
    return h;
  });

/** Byte soup: valid frames, lying headers and junk, in any order. */
const hostileBytes = fc
  .array(fc.oneof(validFrame, bareHeader, fc.uint8Array({ minLength: 1, maxLength: 30 })), { maxLength: 12 })
  .map(concat);

const cuts = fc.array(fc.nat(), { maxLength: 20 });

// Records every Uint8Array/Buffer size asked for while `fn` runs.
function recordAllocations(fn: () => void): number[] {
  const sizes: number[] = [];
  const Real = globalThis.Uint8Array;
  const realAlloc = Buffer.alloc;
  const realUnsafe = Buffer.allocUnsafe;
  globalThis.Uint8Array = new Proxy(Real, {
    construct(target, args, newTarget) {
      if (typeof args[0] === "number") sizes.push(args[0]);
      return Reflect.construct(target, args, newTarget === globalThis.Uint8Array ? target : newTarget) as object;
    },
  });
  Buffer.alloc = ((n: number, ...rest: never[]) => (sizes.push(n), realAlloc(n, ...rest))) as typeof Buffer.alloc;
  Buffer.allocUnsafe = ((n: number) => (sizes.push(n), realUnsafe(n))) as typeof Buffer.allocUnsafe;
  try {
    fn();
  } finally {
    globalThis.Uint8Array = Real;
    Buffer.alloc = realAlloc;
    Buffer.allocUnsafe = realUnsafe;
  }
  return sizes;
}

describe("frame decoder properties", { timeout: fuzzTimeout(10_000) }, () => {
  it("valid frames in any chunking decode to the same frames, in order; frames over the limit are skipped and reported", () => {
    assertMost(
      fc.check(
        fc.property(fc.array(validFrame, { maxLength: 10 }), cuts, (frames, at) => {
          const bytes = concat(frames);
          const got = decodeChunks(split(bytes, at), MAX);
          expect(got.events.map((e) => e[0])).toEqual(
            frames.map((f) => (f.length - HEADER_LENGTH > MAX ? "oversized" : "frame")),
          );
          expect(got).toEqual(reference(bytes, MAX));
          expect(got.idle).toBe(true);
        }),
        fuzzParams(500, 10_000),
      ),
    );
  });

  it("arbitrary bytes in arbitrary chunks never throw and decode exactly as the whole-buffer reference", () => {
    assertMost(
      fc.check(
        fc.property(hostileBytes, cuts, (bytes, at) => {
          const got = decodeChunks(split(bytes, at), MAX);
          expect(got).toEqual(reference(bytes, MAX));
        }),
        fuzzParams(1000, 10_000),
      ),
    );
  });

  it("completely random bytes never throw; every frame handed on is within the limit", () => {
    assertMost(
      fc.check(
        fc.property(fc.uint8Array({ maxLength: 400 }), cuts, (bytes, at) => {
          const got = decodeChunks(split(bytes, at), MAX);
          for (const e of got.events) if (e[0] === "frame") expect(e[4].length / 2).toBeLessThanOrEqual(MAX);
          expect(got).toEqual(reference(bytes, MAX));
        }),
        fuzzParams(1000, 8000),
      ),
    );
  });

  it("allocates nothing larger than the limit, whatever lengths the headers announce (4 GiB included)", () => {
    // The recorder itself is checked: a 5 MiB allocation is seen.
    expect(recordAllocations(() => new Uint8Array(5 << 20))).toContain(5 << 20);
    assertMost(
      fc.check(
        fc.property(hostileBytes, cuts, fc.integer({ min: 0, max: 9 }), (bytes, at, huge) => {
          // Lead with a header announcing up to 4 GiB - 1 and keep feeding bytes.
          const lie = encodeFrame(1, 3, 0);
          new DataView(lie.buffer).setUint32(0, 0xffffffff - huge);
          const chunks = [lie, ...split(bytes, at), new Uint8Array(4096)];
          const d = new FrameDecoder({ frame: () => {}, oversized: () => {} }, DEFAULT_MAX_MESSAGE_SIZE);
          const sizes = recordAllocations(() => {
            for (const c of chunks) d.push(c);
          });
          expect(Math.max(0, ...sizes)).toBeLessThanOrEqual(DEFAULT_MAX_MESSAGE_SIZE);
          expect(d.idle).toBe(false); // still skipping the announced 4 GiB
        }),
        fuzzParams(300, 8000),
      ),
    );
  });
});
