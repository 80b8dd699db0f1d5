// A live server on a real unix socket, fed arbitrary frames and bytes. For
// each input: nothing escapes to the process, every malformed frame the
// docs/protocol.md names gets its status on its own stream ID, the connection
// is not dropped for a stream-level fault, and another connection is served
// throughout. At the end every handler's signal has fired and nothing leaks.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fromBinary } from "@bufbuild/protobuf";
import { Code, HEADER_LENGTH, encodeFrame } from "ttrpc-es";
import { decodeRequest } from "../../src/envelope.js";
import { ResponseSchema } from "../../gen/ttrpc/request_pb.js";
import { checkLeaksAfterAll, expectResourcesSettled, resourceCounts } from "../leak-check.js";
import { assertMost, fuzzParams, fuzzTimeout } from "./fuzz-config.js";
import {
  Interop,
  RawPeer,
  echoBytes,
  expectServing,
  hostileServer,
  requestBytes,
  statusOf,
  trapProcessErrors,
  until,
} from "./helpers.js";

checkLeaksAfterAll();

const MAX = 512;
const SENTINEL = 0xffffffff; // no generated frame uses it
const u32 = (b: Uint8Array, o: number) => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;

const id = fc.oneof(fc.integer({ min: 0, max: 16 }), fc.integer({ min: 0, max: SENTINEL - 2 }));
const byte = fc.integer({ min: 0, max: 255 });
const smallBytes = fc.uint8Array({ maxLength: 24 });
const methods = ["Echo", "EchoEmpty", "ServerStream", "ClientStream", "Bidi", "Nope", ""];
const echoPayload = fc
  .record({ text: fc.string({ maxLength: 8 }), count: fc.nat(5), delayMs: fc.constantFrom(0, 0, 1) })
  .map((r) => echoBytes(r));

const requestFrame = fc
  .record({
    id,
    flags: fc.oneof(fc.constantFrom(0, 1, 2, 6), byte),
    body: fc.oneof(
      fc
        .record({
          service: fc.oneof(fc.constant(Interop.typeName), fc.string({ maxLength: 6 })),
          method: fc.constantFrom(...methods),
          payload: fc.oneof(echoPayload, smallBytes),
        })
        .map(({ service, method, payload }) => requestBytes(method, payload, service)),
      smallBytes,
    ),
  })
  .map(({ id, flags, body }) => encodeFrame(id, 1, flags, body));
const dataFrame = fc
  .record({ id, flags: fc.oneof(fc.constantFrom(0, 1, 4, 5), byte), payload: fc.oneof(echoPayload, smallBytes) })
  .map(({ id, flags, payload }) => encodeFrame(id, 3, flags, payload));
const otherFrame = fc
  .record({ id, type: byte, flags: byte, payload: smallBytes })
  .map(({ id, type, flags, payload }) => encodeFrame(id, type, flags, payload));
const oversizedFrame = fc
  .record({ id, type: fc.constantFrom(1, 3, 2, 9), extra: fc.integer({ min: 1, max: 64 }) })
  .map(({ id, type, extra }) => encodeFrame(id, type, 0, new Uint8Array(MAX + extra)));
const lyingHeader = fc
  .record({
    id,
    type: byte,
    len: fc.oneof(fc.integer({ min: 0, max: 2 * MAX }), fc.integer({ min: 0, max: 0xffffffff })),
  })
  .map(({ id, type, len }) => {
    const h = encodeFrame(id, type, 0);
    new DataView(h.buffer).setUint32(0, len);
    return h;
  });
const junk = fc.uint8Array({ minLength: 1, maxLength: 16 });

const hostileInput = fc
  .array(
    fc.oneof(
      { weight: 4, arbitrary: requestFrame },
      { weight: 3, arbitrary: dataFrame },
      otherFrame,
      oversizedFrame,
      lyingHeader,
      junk,
    ),
    {
      minLength: 1,
      maxLength: 10,
    },
  )
  .map((parts) => Uint8Array.from(Buffer.concat(parts)));

interface Parsed {
  frames: { id: number; type: number; flags: number; len: number; payload: Uint8Array }[];
  /** Bytes that would complete the last, partial frame; undefined if too many to send. */
  pad: number | undefined;
}

function parse(bytes: Uint8Array): Parsed {
  const frames: Parsed["frames"] = [];
  let pos = 0;
  while (bytes.length - pos >= HEADER_LENGTH) {
    const len = u32(bytes, pos);
    const rest = bytes.length - pos - HEADER_LENGTH;
    if (rest < len) {
      const need = len - rest;
      return { frames, pad: need <= 64 * 1024 ? need : undefined };
    }
    frames.push({
      id: u32(bytes, pos + 4),
      type: bytes[pos + 8]!,
      flags: bytes[pos + 9]!,
      len,
      payload: bytes.subarray(pos + 10, pos + 10 + len),
    });
    pos += HEADER_LENGTH + len;
  }
  return { frames, pad: pos === bytes.length ? 0 : HEADER_LENGTH - (bytes.length - pos) };
}

/** Zero bytes that end `bytes` on a frame boundary (header, then its body), or undefined if too many. */
function completion(bytes: Uint8Array): number | undefined {
  let padded = bytes;
  for (;;) {
    const { pad } = parse(padded);
    if (pad === undefined) return undefined;
    if (pad === 0) return padded.length - bytes.length;
    padded = Uint8Array.from(Buffer.concat([padded, new Uint8Array(pad)]));
  }
}

const known = new Set(Interop.methods.map((m) => m.name));

/**
 * What docs/protocol.md makes certain, frame by frame: the statuses the
 * server must send, on which IDs. (Outcomes that depend on handler timing,
 * such as Data racing a finishing call, are not predicted.)
 */
function expectedStatuses(frames: Parsed["frames"]): { id: number; code: Code }[] {
  const out: { id: number; code: Code }[] = [];
  const opened = new Set<number>();
  let last = 0;
  for (const f of frames) {
    if (f.len > MAX) {
      out.push({ id: f.id, code: Code.ResourceExhausted });
      continue;
    }
    if (f.type !== 1 && f.type !== 3) continue;
    if (f.id % 2 === 0) {
      out.push({ id: f.id, code: Code.InvalidArgument });
      continue;
    }
    if (f.type === 3) {
      if (!opened.has(f.id)) out.push({ id: f.id, code: Code.InvalidArgument });
      continue;
    }
    if (f.id <= last) {
      out.push({ id: f.id, code: Code.InvalidArgument });
      continue;
    }
    last = f.id;
    let req;
    try {
      // The envelope decoder is held to protobuf-es and Go's rules in envelope.property.test.ts.
      req = decodeRequest(f.payload);
    } catch {
      out.push({ id: f.id, code: Code.InvalidArgument });
      continue;
    }
    if (req.service !== Interop.typeName || !known.has(req.method)) out.push({ id: f.id, code: Code.Unimplemented });
    else opened.add(f.id);
  }
  return out;
}

/**
 * Writes `bytes` in pieces; when the input can be completed cheaply, completes
 * it and checks every answer against docs/protocol.md. Returns whether it could.
 */
async function exchange(peer: RawPeer, bytes: Uint8Array, cuts: number[]): Promise<boolean> {
  const { frames } = parse(bytes);
  const pad = completion(bytes);
  // Arbitrary write boundaries (the kernel may join them again).
  let last = 0;
  for (const c of [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)) {
    peer.write(bytes.subarray(last, c));
    last = c;
  }
  peer.write(bytes.subarray(last));
  if (pad === undefined) return false;
  // Complete a partial frame with zeros, then ask something on an ID no input uses.
  const padded = new Uint8Array(pad);
  if (pad > 0) frames.push(...parse(Uint8Array.from(Buffer.concat([bytes, padded]))).frames.slice(frames.length));
  peer.write(padded);
  peer.write(encodeFrame(SENTINEL, 1, 0, requestBytes("EchoEmpty")));
  // The server reads in order: once the sentinel is answered, every frame before it was handled.
  await until(() => peer.frames.some((f) => f.streamId === SENTINEL) || peer.ended, "the sentinel's answer");
  expect(peer.ended, "connection dropped on hostile input").toBe(false);
  const sent = new Set([...frames.map((f) => f.id), SENTINEL]);
  for (const f of peer.frames) {
    expect([2, 3]).toContain(f.type);
    expect(sent.has(f.streamId), `answer on stream ${f.streamId} that the client never used`).toBe(true);
    if (f.type === 2) expect(() => fromBinary(ResponseSchema, f.payload)).not.toThrow();
  }
  const responses = peer.frames.filter((f) => f.type === 2).map((f) => ({ id: f.streamId, code: statusOf(f).code }));
  for (const want of expectedStatuses(frames)) {
    const i = responses.findIndex((r) => r.id === want.id && r.code === want.code);
    expect(
      i,
      `status ${Code[want.code]} on stream ${want.id}; got ${JSON.stringify(responses)}`,
    ).toBeGreaterThanOrEqual(0);
    responses.splice(i, 1);
  }
  const sentinel = peer.frames.find((f) => f.streamId === SENTINEL)!;
  expect(statusOf(sentinel).code).toBe(Code.Ok);
  return true;
}

/**
 * The share of exchanges that must end with the sentinel checked. Seeds 1-6
 * checked 117 to 153 of 250 (47-61 %): the rest are inputs that end the
 * connection, or that no padding completes. A generator or server change
 * that leaves the sentinel unchecked falls below this.
 */
const SENTINEL_SHARE = 0.35;

describe("live server fed hostile bytes over a unix socket", () => {
  it(
    "answers what docs/protocol.md requires, never drops the connection for a stream fault, and keeps serving others",
    async () => {
      trapProcessErrors();
      const { server, path, bystander, tracker } = await hostileServer({ server: { maxMessageSize: MAX } });
      const base = resourceCounts();
      let withSentinel = 0;
      const details = assertMost(
        await fc.check(
          fc.asyncProperty(hostileInput, fc.array(fc.nat(), { maxLength: 6 }), async (bytes, cuts) => {
            const peer = await RawPeer.connect(path);
            try {
              if (await exchange(peer, bytes, cuts)) withSentinel++;
            } finally {
              peer.socket.destroy();
            }
            await expectServing(bystander);
            await until(() => server.connectionCount === 1, "the hostile connection to be gone");
          }),
          fuzzParams(250, 20_000),
        ),
      );
      // The sentinel's answer proves the server read past the hostile input: a
      // run where few exchanges got that far proves little (SENTINEL_SHARE).
      expect(withSentinel, `${withSentinel} of ${details.numRuns} exchanges fully checked`).toBeGreaterThanOrEqual(
        Math.ceil(details.numRuns * SENTINEL_SHARE),
      );
      // Every call the hostile connections started has ended, signal fired.
      await until(() => tracker.open === 0, "every handler's signal");
      await expectResourcesSettled(base);
    },
    fuzzTimeout(20_000),
  );
});
