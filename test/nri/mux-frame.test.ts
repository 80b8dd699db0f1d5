// The NRI mux frame decoder on its own: bytes pushed in exactly the chunks a
// test chooses (a header cut anywhere, an empty frame at a chunk's end), and
// what it hands its sink. The multiplexer above it is tested in
// multiplexer.test.ts; these are edges a mutation run found untested.
import { describe, expect, it } from "vitest";
import { Event, eventBit, eventsOf } from "ttrpc-es/nri";
import { encodeMuxHeader, MAX_MUX_PAYLOAD, MuxFrameDecoder, MuxFrameError } from "../../src/nri/mux-frame.js";

const frame = (id: number, payload: string) =>
  Buffer.concat([encodeMuxHeader(id, payload.length), Buffer.from(payload)]);

/** A decoder and what it handed on, as [id, bytes, end]. */
function decoder() {
  const got: [number, string, boolean][] = [];
  const d = new MuxFrameDecoder({ data: (id, bytes, end) => void got.push([id, bytes.toString(), end]) });
  return { d, got };
}

describe("mux frame decoder", () => {
  it("a header cut after any byte, behind a whole frame in the same chunk, decodes the same", () => {
    const bytes = Buffer.concat([frame(1, "a"), frame(2, "bc")]);
    for (let cut = 1; cut < bytes.length; cut++) {
      const { d, got } = decoder();
      d.push(bytes.subarray(0, cut));
      expect(d.idle, `cut at ${cut}`).toBe(cut === 9);
      d.push(bytes.subarray(cut));
      const byId: Record<number, string> = {};
      for (const [id, b] of got) byId[id] = (byId[id] ?? "") + b;
      expect(byId, `cut at ${cut}`).toEqual({ 1: "a", 2: "bc" });
      expect(got.filter(([, , end]) => end).map(([id]) => id)).toEqual([1, 2]);
      expect(d.idle).toBe(true);
    }
  });

  it("an empty frame is handed on at once as a zero-length end, even at a chunk's end", () => {
    const { d, got } = decoder();
    d.push(encodeMuxHeader(2, 0));
    expect(got).toEqual([[2, "", true]]);
    expect(d.idle).toBe(true);
    d.push(frame(2, "x"));
    expect(got).toEqual([
      [2, "", true],
      [2, "x", true],
    ]);
  });

  it("a frame of exactly 16 MiB is announced fine; one byte more is a MuxFrameError saying so", () => {
    const { d } = decoder();
    d.push(encodeMuxHeader(1, MAX_MUX_PAYLOAD));
    expect(d.idle).toBe(false); // waiting for its payload
    const err = (() => {
      try {
        decoder().d.push(encodeMuxHeader(3, MAX_MUX_PAYLOAD + 1));
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(MuxFrameError);
    expect(err).toMatchObject({
      name: "MuxFrameError",
      message: "nri mux: frame for connection 3 announces 16777217 bytes, over the 16777216-byte limit",
    });
  });
});

describe("event masks", () => {
  it("eventsOf ignores the bit of LAST, which is no event", () => {
    expect(eventsOf(eventBit(Event.RUN_POD_SANDBOX) | eventBit(Event.LAST))).toEqual([Event.RUN_POD_SANDBOX]);
  });
});
