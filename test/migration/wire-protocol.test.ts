// The memory stream's messages: each one's decoder reads back exactly what
// its encoder wrote (a table that must name every message type, so a new one
// cannot go untested), decoders refuse payloads of the wrong size, and
// property tests hold the page-run list to its rules for any runs: what is
// in range round-trips, through the frame reader that places pages in
// memory too; what is empty, out of range or mis-sized is refused.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DirectFrameReader, type PageSink } from "../../src/migration/simulated/frame-io.js";
import {
  AbortReason,
  decodeAbort,
  decodeDeviceState,
  decodeHello,
  decodeHelloAck,
  decodePassAck,
  decodePassBegin,
  decodePassEnd,
  decodeResult,
  decodeRunList,
  decodeSetup,
  decodeVerify,
  decodeZeroPages,
  encodeAbort,
  encodeDeviceState,
  encodeEmpty,
  encodeHello,
  encodeHelloAck,
  encodePagesHead,
  encodePassAck,
  encodePassBegin,
  encodePassEnd,
  encodeResult,
  encodeSetup,
  encodeVerify,
  encodeZeroPages,
  FRAME_HEADER,
  Frame,
  MessageType,
  runCount,
  WIRE_VERSION,
  WireError,
} from "../../src/migration/simulated/wire-protocol.js";

/** A frame's header, checked, and its payload. */
function unframe(frame: Buffer): { type: MessageType; payload: Buffer } {
  expect(frame[0]).toBe(WIRE_VERSION);
  expect(frame.readUInt32BE(2)).toBe(frame.length - FRAME_HEADER);
  return { type: frame[1] as MessageType, payload: frame.subarray(FRAME_HEADER) };
}

const digest = "ab".repeat(32);
const token = Uint8Array.from({ length: 16 }, (_, i) => i + 1);

/** Every message: its type, an encoded example, how to decode it, and what must come back. */
const messages: [MessageType, Buffer, (p: Buffer) => unknown, unknown][] = [
  [
    MessageType.Hello,
    encodeHello({ token, sessionNumber: 0xfedcba98, sender: "destination", channel: 3, channels: 4 }),
    decodeHello,
    { token: Buffer.from(token), sessionNumber: 0xfedcba98, sender: "destination", channel: 3, channels: 4 },
  ],
  [
    MessageType.HelloAck,
    encodeHelloAck({ sender: "source", channels: 16 }),
    decodeHelloAck,
    { sender: "source", channels: 16 },
  ],
  [
    MessageType.Setup,
    encodeSetup({ pageSize: 4096, pageCount: 2 ** 32 - 1, checksums: true, compression: false }),
    decodeSetup,
    { pageSize: 4096, pageCount: 2 ** 32 - 1, checksums: true, compression: false },
  ],
  [MessageType.Ready, encodeEmpty(MessageType.Ready), (p) => p.length, 0],
  [
    MessageType.PassBegin,
    encodePassBegin({ pass: 7, pages: 123456, blackout: true }),
    decodePassBegin,
    { pass: 7, pages: 123456, blackout: true },
  ],
  [
    MessageType.Pages,
    encodePagesHead(MessageType.Pages, [5, 2, 100, 1], 0, 0).head,
    (p) => decodeRunList(p, 101),
    { runs: [5, 2, 100, 1], pages: 3 },
  ],
  [MessageType.PassEnd, encodePassEnd({ pass: 9, last: true }), decodePassEnd, { pass: 9, last: true }],
  [
    MessageType.DeviceState,
    encodeDeviceState({ vcpus: 2, workload: { seed: 1 } }),
    decodeDeviceState,
    { vcpus: 2, workload: { seed: 1 } },
  ],
  [MessageType.BlackoutEnd, encodeEmpty(MessageType.BlackoutEnd), (p) => p.length, 0],
  [MessageType.OfflineAck, encodeEmpty(MessageType.OfflineAck), (p) => p.length, 0],
  [
    MessageType.Verify,
    encodeVerify({ digest, blackoutMs: 12.5, stoppedAtMs: 1_765_000_000_123.25 }),
    decodeVerify,
    { digest, blackoutMs: 12.5, stoppedAtMs: 1_765_000_000_123.25 },
  ],
  [
    MessageType.Result,
    encodeResult({ ok: false, digest, message: "image digest mismatch ✗" }),
    decodeResult,
    { ok: false, digest, message: "image digest mismatch ✗" },
  ],
  [
    MessageType.Abort,
    encodeAbort({ reason: AbortReason.ChecksumMismatch, message: "page 3" }),
    decodeAbort,
    { reason: AbortReason.ChecksumMismatch, message: "page 3" },
  ],
  [MessageType.ZeroPages, encodeZeroPages([0, 4, 9, 1]), (p) => decodeZeroPages(p, 10), [0, 4, 9, 1]],
  [
    MessageType.CompressedPages,
    encodePagesHead(MessageType.CompressedPages, [0, 8], 0, 0).head,
    (p) => decodeRunList(p, 8),
    { runs: [0, 8], pages: 8 },
  ],
  [MessageType.PassAck, encodePassAck(0xffffffff), decodePassAck, 0xffffffff],
];

describe("every memory-stream message", () => {
  it("has a round-trip case here", () => {
    const all = Object.values(MessageType).filter((v) => typeof v === "number");
    expect(messages.map(([type]) => type).sort((a, b) => a - b)).toEqual(all);
  });

  it.each(messages.map((m) => [MessageType[m[0]], ...m] as const))(
    "%s decodes to what was encoded",
    (_, type, frame, decode, value) => {
      const { type: got, payload } = unframe(frame);
      expect(got).toBe(type);
      expect(decode(payload)).toEqual(value);
    },
  );

  it("Setup carries each flag on its own", () => {
    for (const checksums of [false, true])
      for (const compression of [false, true]) {
        const s = { pageSize: 65536, pageCount: 3, checksums, compression };
        expect(decodeSetup(unframe(encodeSetup(s)).payload)).toEqual(s);
      }
  });

  it.each([
    ["Hello", decodeHello, 23],
    ["HelloAck", decodeHelloAck, 2],
    ["Setup", decodeSetup, 13],
    ["PassBegin", decodePassBegin, 9],
    ["PassEnd", decodePassEnd, 5],
    ["PassAck", decodePassAck, 4],
    ["Verify", decodeVerify, 48],
  ] as const)("%s of the wrong size is refused", (_, decode, size) => {
    expect(() => decode(Buffer.alloc(size - 1))).toThrow(WireError);
    expect(() => decode(Buffer.alloc(size + 1))).toThrow(WireError);
  });

  it("refuses what cannot be read at all", () => {
    expect(() => decodeResult(Buffer.alloc(32))).toThrow(WireError);
    expect(() => decodeAbort(Buffer.alloc(0))).toThrow(WireError);
    expect(() => decodeDeviceState(Buffer.from("{"))).toThrow(WireError);
    expect(() => decodeHelloAck(Buffer.from([3, 1]))).toThrow("unknown sender 3");
    expect(decodeAbort(Buffer.from([99, 0x61])).reason).toBe(AbortReason.Error);
  });
});

const PAGE_COUNT = 1 << 20;

/** Runs inside an image of `PAGE_COUNT` pages, flat `[first, count, …]`. */
const runsInRange = fc
  .array(
    fc
      .integer({ min: 0, max: PAGE_COUNT - 1 })
      .chain((first) =>
        fc.integer({ min: 1, max: Math.min(64, PAGE_COUNT - first) }).map((count) => [first, count] as const),
      ),
    { minLength: 1, maxLength: 256 },
  )
  .map((pairs) => pairs.flat());

const listOf = (runs: readonly number[]) => encodePagesHead(MessageType.Pages, runs, 0, 0).head.subarray(FRAME_HEADER);

describe("the page-run list", () => {
  it("round-trips any runs in range, with their page total", () => {
    fc.assert(
      fc.property(runsInRange, (runs) => {
        const pages = runs.reduce((n, v, k) => (k % 2 === 1 ? n + v : n), 0);
        expect(decodeRunList(listOf(runs), PAGE_COUNT)).toEqual({ runs, pages });
      }),
    );
  });

  it("refuses a run that is empty or reaches past the last page, wherever it is", () => {
    const bad = fc.oneof(
      fc.integer({ min: 0, max: PAGE_COUNT - 1 }).map((first) => [first, 0]),
      fc
        .integer({ min: 1, max: 2 ** 31 })
        .chain((over) =>
          fc.integer({ min: 0, max: PAGE_COUNT - 1 }).map((first) => [first, PAGE_COUNT - first + over]),
        ),
      fc.integer({ min: PAGE_COUNT, max: 2 ** 32 - 2 }).map((first) => [first, 1]),
    );
    fc.assert(
      fc.property(runsInRange, bad, fc.nat(), (runs, [first, count], at) => {
        const k = 2 * (at % (runs.length / 2 + 1));
        const list = listOf([...runs.slice(0, k), first!, count!, ...runs.slice(k)]);
        expect(() => decodeRunList(list, PAGE_COUNT)).toThrow(WireError);
      }),
    );
  });

  it("refuses a list whose length is not what its run count says", () => {
    fc.assert(
      fc.property(
        runsInRange,
        fc.integer({ min: -8, max: 8 }).filter((d) => d !== 0),
        (runs, delta) => {
          const list = listOf(runs);
          const wrong = delta < 0 ? list.subarray(0, list.length + delta) : Buffer.concat([list, Buffer.alloc(delta)]);
          expect(() => decodeRunList(wrong, PAGE_COUNT)).toThrow(WireError);
        },
      ),
    );
    expect(() => decodeRunList(Buffer.from([0, 0, 0, 0]), PAGE_COUNT)).toThrow(WireError);
  });

  it("as ZeroPages markers round-trips any runs in range, and refuses a partial pair", () => {
    fc.assert(
      fc.property(runsInRange, (runs) => {
        const payload = unframe(encodeZeroPages(runs)).payload;
        expect(decodeZeroPages(payload, PAGE_COUNT)).toEqual(runs);
        expect(() => decodeZeroPages(payload.subarray(0, payload.length - 4), PAGE_COUNT)).toThrow(WireError);
      }),
    );
  });

  it("puts each page where its run says, through the reader that places pages in memory", () => {
    const pageSize = 8;
    const pageCount = 64;
    const runs = fc
      .uniqueArray(fc.integer({ min: 0, max: pageCount - 1 }), { minLength: 1, maxLength: 32 })
      .map((pages) => pages.flatMap((p) => [p, 1]));
    fc.assert(
      fc.property(runs, fc.integer({ min: 1, max: 50 }), (runs, chunk) => {
        const memory = Buffer.alloc(pageSize * pageCount);
        const sink: PageSink = {
          pageSize,
          pageCount,
          sumBytes: () => 0,
          views: (first, count) => [memory.subarray(first * pageSize, (first + count) * pageSize)],
        };
        const reader = new DirectFrameReader({ maxPayload: 1 << 20 });
        reader.sink = sink;
        const pages = runs.filter((_, k) => k % 2 === 0).map((p) => Buffer.alloc(pageSize, p + 1));
        const wire = Buffer.concat([
          encodePagesHead(MessageType.Pages, runs, 0, pages.length * pageSize).head,
          ...pages,
        ]);
        // As the kernel would: copy the bytes into the buffer the reader names, `chunk` at most per read.
        for (let at = 0; at < wire.length; ) {
          const target = reader.onread.buffer();
          const n = wire.copy(target, 0, at, at + Math.min(chunk, target.length));
          reader.onread.callback(n);
          at += n;
        }
        for (let k = 0; k < runs.length; k += 2)
          expect(memory[runs[k]! * pageSize], `page ${runs[k]}`).toBe(runs[k]! + 1);
        expect(memory.filter((b) => b !== 0).length).toBe(pages.length * pageSize);
      }),
    );
  });
});

describe("the other value of each flag, and each refusal's message", () => {
  it("round-trips the flags and reasons the table above leaves at one value", () => {
    const begin = { pass: 1, pages: 0, blackout: false };
    expect(decodePassBegin(unframe(encodePassBegin(begin)).payload)).toEqual(begin);
    const end = { pass: 2, last: false };
    expect(decodePassEnd(unframe(encodePassEnd(end)).payload)).toEqual(end);
    const result = { ok: true, digest, message: "" };
    expect(decodeResult(unframe(encodeResult(result)).payload)).toEqual(result);
    for (const reason of [AbortReason.Error, AbortReason.Cancelled])
      expect(decodeAbort(unframe(encodeAbort({ reason, message: "" })).payload)).toEqual({ reason, message: "" });
  });

  it("sends only the first 16 bytes of a longer Hello token", () => {
    const long = Uint8Array.from({ length: 24 }, (_, i) => 0xa0 + i);
    const h = decodeHello(
      unframe(encodeHello({ token: long, sessionNumber: 5, sender: "source", channel: 0, channels: 0 })).payload,
    );
    expect(h).toEqual({
      token: Buffer.from(long.subarray(0, 16)),
      sessionNumber: 5,
      sender: "source",
      channel: 0,
      channels: 0,
    });
  });

  it("says what is wrong with a payload of the wrong size", () => {
    expect(() => decodeHello(Buffer.alloc(22))).toThrow(new WireError("memory stream: Hello of 22 bytes, not 23"));
    expect(() => decodeResult(Buffer.alloc(32))).toThrow(new WireError("memory stream: Result of 32 bytes, not ≥ 33"));
    expect(() => decodeZeroPages(Buffer.alloc(12), 8)).toThrow(
      new WireError("memory stream: ZeroPages frame of 12 bytes"),
    );
    expect(() => decodeRunList(Buffer.alloc(2), 8)).toThrow(
      new WireError("memory stream: a run list of 2 bytes with 0 runs"),
    );
  });

  it("says which pages are out of range", () => {
    expect(() => decodeZeroPages(Buffer.from([0, 0, 0, 5, 0, 0, 0, 2]), 6)).toThrow(
      new WireError("memory stream: pages 5 … 6 out of range"),
    );
  });

  it("refuses a DeviceState that is not JSON, with the parser's reason", () => {
    let err: unknown;
    try {
      decodeDeviceState(Buffer.from("{"));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(WireError);
    expect((err as Error).message).toMatch(/^memory stream: DeviceState is not JSON: .+/);
  });

  it("refuses to encode a digest that is not 32 bytes", () => {
    const short = "ab".repeat(31);
    expect(() => encodeVerify({ digest: short, blackoutMs: 0, stoppedAtMs: 0 })).toThrow(
      new WireError("an image digest is 32 bytes, not 31"),
    );
    expect(() => encodeResult({ ok: false, digest: `${digest}00`, message: "" })).toThrow(WireError);
  });
});

describe("a Pages frame's head", () => {
  it("counts the run list, checksums and page data in its header, and leaves room for the sums after the list", () => {
    const { head, sumsAt } = encodePagesHead(MessageType.CompressedPages, [3, 2], 8, 100);
    expect(sumsAt).toBe(FRAME_HEADER + 12);
    expect(head.length).toBe(FRAME_HEADER + 12 + 8);
    expect([head[0], head[1], head.readUInt32BE(2)]).toEqual([WIRE_VERSION, MessageType.CompressedPages, 12 + 8 + 100]);
    expect(runCount(head.subarray(FRAME_HEADER))).toBe(1);
    expect(decodeRunList(head.subarray(FRAME_HEADER, sumsAt), 5)).toEqual({ runs: [3, 2], pages: 2 });
  });
});

describe("a frame read in several chunks", () => {
  const parts = [Buffer.from("abcd"), Buffer.from("efgh"), Buffer.from("ij")];
  const frame = new Frame(MessageType.DeviceState, parts, 10);

  it("joins its payload, and its head when the head spans chunks", () => {
    expect(frame.payload.toString()).toBe("abcdefghij");
    expect(frame.head(3).toString()).toBe("abc");
    expect(frame.head(6).toString()).toBe("abcdef");
    expect(new Frame(MessageType.Ready, [], 0).head(0).length).toBe(0);
  });

  it("copies from any offset, skipping whole chunks, until the target is full", () => {
    const target = Buffer.alloc(5);
    frame.copyTo(target, 5);
    expect(target.toString()).toBe("fghij");
    const short = Buffer.alloc(3);
    frame.copyTo(short, 2);
    expect(short.toString()).toBe("cde");
  });
});
