import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeFrame } from "../../src/frame.js";
import { GoReadSplitter } from "../../src/nri/go-read-splitter.js";
import { GoEnomem, goReadFrames, goWriterCuts } from "./go-reader-model.js";

// Payload sizes around the edges that matter: 4086 fills one 4096-byte read with the header.
const payloadLength = fc.oneof(
  fc.integer({ min: 0, max: 64 }),
  fc.constantFrom(4085, 4086, 4087, 4096, 8182, 8192),
  fc.integer({ min: 0, max: 20_000 }),
);

function frameOf(length: number, seed: number): Uint8Array {
  const payload = new Uint8Array(length);
  for (let i = 0; i < length; i++) payload[i] = (i * 31 + seed) & 0xff;
  return encodeFrame(seed * 2 + 1, 1, 0, payload);
}

/** Cuts `bytes` at the given fractions (any split, including empty pieces). */
function chunk(bytes: Uint8Array, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => Math.floor(c * bytes.length)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let at = 0;
  for (const p of [...points, bytes.length]) {
    out.push(Buffer.from(bytes.subarray(at, p)));
    at = p;
  }
  return out;
}

describe("GoReadSplitter against a model of Go's mux + bufio reader", () => {
  it("any frames, written in any chunks, are read back by Go without ENOMEM", () => {
    fc.assert(
      fc.property(
        fc.array(payloadLength, { minLength: 1, maxLength: 8 }),
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 12 }),
        (lengths, cuts) => {
          const frames = lengths.map((l, i) => frameOf(l, i));
          const stream = Buffer.concat(frames);
          const splitter = new GoReadSplitter();
          const muxFrames = chunk(stream, cuts).flatMap((c) => splitter.split(c));
          const read = goReadFrames(muxFrames);
          expect(read.map((f) => f.length)).toEqual(lengths);
          const back = Buffer.concat(read.map((f, i) => encodeFrame(i * 2 + 1, 1, 0, f.payload)));
          expect(back.equals(stream)).toBe(true);
        },
      ),
      { numRuns: 150 },
    );
  });

  it("whole-frame writes are cut exactly where Go's bufio.Writer cuts them", () => {
    fc.assert(
      fc.property(payloadLength, (length) => {
        const splitter = new GoReadSplitter();
        expect(splitter.split(Buffer.from(frameOf(length, 0))).map((b) => b.length)).toEqual(goWriterCuts(length));
      }),
    );
  });

  it("the model catches the trap: one 64 KiB frame in one mux frame fails in Go", () => {
    expect(() => goReadFrames([frameOf(64 << 10, 0)])).toThrow(GoEnomem);
    // and so does a frame over 4096 bytes that starts inside a header
    expect(() => goReadFrames([frameOf(5000, 0).subarray(0, 4097)])).toThrow(GoEnomem);
  });
});
