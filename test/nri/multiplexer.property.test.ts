import { Duplex, PassThrough } from "node:stream";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createMultiplexer } from "../../src/nri/multiplexer.js";
import { encodeMuxHeader } from "../../src/nri/mux-frame.js";
import { duplexPair } from "./duplex-pair.js";

// The reference model: a mux trunk is a sequence of (id, payload) frames; the
// receiving side delivers, per opened id, the concatenation of its payloads in
// order and nothing for any other id.
type Frame = { id: number; payload: Uint8Array };

const frameArb: fc.Arbitrary<Frame> = fc.record({
  id: fc.constantFrom(0, 1, 2, 3, 7, 0xffff_ffff),
  payload: fc.uint8Array({ maxLength: 300 }),
});

function model(frames: readonly Frame[], opened: readonly number[]): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  for (const id of opened) out.set(id, Buffer.concat(frames.filter((f) => f.id === id).map((f) => f.payload)));
  return out;
}

/** A trunk whose incoming bytes the test writes, in any chunks. */
function inboundTrunk(): { trunk: Duplex; feed: PassThrough } {
  const feed = new PassThrough();
  const trunk = Duplex.from({ readable: feed, writable: new PassThrough() });
  return { trunk, feed };
}

async function collect(stream: Duplex): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

describe("multiplexer against a reference model", () => {
  it("any frames, any ids, any split or coalescing of trunk bytes: each connection gets exactly its bytes", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(frameArb, { maxLength: 20 }),
        fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 30 }),
        async (frames, chunkSizes) => {
          const { trunk, feed } = inboundTrunk();
          const mux = createMultiplexer(trunk);
          const opened = [1, 2, 0xffff_ffff];
          const reads = opened.map((id) => collect(mux.open(id)));
          const bytes = Buffer.concat(frames.flatMap((f) => [encodeMuxHeader(f.id, f.payload.length), f.payload]));
          let at = 0;
          for (let i = 0; at < bytes.length; i++) {
            const n = chunkSizes[i % chunkSizes.length]!;
            feed.write(bytes.subarray(at, at + n));
            at += n;
          }
          feed.end();
          const got = await Promise.all(reads);
          const want = model(frames, opened);
          for (const [i, id] of opened.entries()) expect(got[i]!.equals(want.get(id)!)).toBe(true);
          expect(await mux.done).toBeUndefined();
        },
      ),
      { numRuns: 200 },
    );
  });

  it("any interleaving of writes on several connections arrives, per connection, in order", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({ conn: fc.constantFrom(1, 2, 3), bytes: fc.uint8Array({ minLength: 1, maxLength: 9000 }) }),
          {
            maxLength: 12,
          },
        ),
        async (writes) => {
          const [a, b] = duplexPair();
          const left = createMultiplexer(a);
          const right = createMultiplexer(b);
          const ids = [1, 2, 3];
          const reads = ids.map((id) => collect(right.open(id)));
          const conns = ids.map((id) => left.open(id));
          for (const w of writes) conns[w.conn - 1]!.write(w.bytes);
          await Promise.all(conns.map((c) => new Promise<void>((r) => c.end(r))));
          left.close();
          const got = await Promise.all(reads);
          ids.forEach((id, i) => {
            const want = Buffer.concat(writes.filter((w) => w.conn === id).map((w) => w.bytes));
            expect(got[i]!.equals(want)).toBe(true);
          });
        },
      ),
      { numRuns: 100 },
    );
  });
});
