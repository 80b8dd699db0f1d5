/**
 * The memory stream between two simulated shims: its own framing, not ttrpc,
 * and every message's one encoder and one decoder, which both sides and the
 * tests use (docs/migration.md lists the same layouts).
 *
 * Every frame is a 6-byte header, then the payload:
 *
 * | offset | size | field |
 * |---|---|---|
 * | 0 | 1 | protocol version, {@link WIRE_VERSION} (`2`) |
 * | 1 | 1 | message type ({@link MessageType}) |
 * | 2 | 4 | payload length, big-endian |
 *
 * All integers are big-endian. A frame with another version, an unknown
 * type or a payload over the reader's limit is a protocol error that ends
 * the transfer (frame-io.ts reads frames); so is a payload its decoder
 * refuses. Version 2 is not compatible with version 1 (per-page SHA-1, one
 * connection, zero pages sent as bytes).
 *
 * @module
 */

export const WIRE_VERSION = 2;
export const FRAME_HEADER = 6;

export enum MessageType {
  /**
   * connector → listener, per channel: token[16], session number u32, sender u8 (1 source, 2 destination),
   * channel u8, channels u8 (0: not known).
   */
  Hello = 1,
  /** listener → connector: sender u8, channels u8 (0: not known). */
  HelloAck = 2,
  /**
   * source → destination: page size u32, page count u32, flags u8 (bit 0 checksums, bit 1 compression),
   * reserved u32.
   */
  Setup = 3,
  /** destination → source: empty. */
  Ready = 4,
  /** source → destination: pass u32, pages u32, blackout u8. */
  PassBegin = 5,
  /**
   * source → destination, any channel: runs u32, runs × (first u32, count u32), [pages × CRC-32 u32],
   * pages × page bytes.
   */
  Pages = 6,
  /**
   * source → destination, on every channel: pass u32, last u8 (1: the blackout pass, nothing follows on the
   * channel).
   */
  PassEnd = 7,
  /** source → destination: device state, UTF-8 JSON. */
  DeviceState = 8,
  /** source → destination: empty; everything of the blackout is sent. */
  BlackoutEnd = 9,
  /** destination → source: empty; everything is applied (the source measures the blackout here). */
  OfflineAck = 10,
  /** source → destination: image digest[32], blackout ms f64, blackout end (ms since epoch) f64. */
  Verify = 11,
  /** destination → source: ok u8, image digest[32], message UTF-8. */
  Result = 12,
  /** either way: reason u8 ({@link AbortReason}), message UTF-8; the sender closes after it. */
  Abort = 13,
  /** source → destination, any channel: zero pages as markers: n × (first u32, count u32). */
  ZeroPages = 14,
  /**
   * source → destination, any channel: runs u32, runs × (first u32, count u32), [pages × CRC-32 u32], raw deflate of
   * pages × page bytes.
   */
  CompressedPages = 15,
  /** destination → source: pass u32; every channel's pages of the pass are applied. */
  PassAck = 16,
}

export enum AbortReason {
  Error = 1,
  Cancelled = 2,
  ChecksumMismatch = 3,
}

/** Which shim sent a Hello or HelloAck. */
export type Sender = "source" | "destination";
const SENDER_CODE: Record<Sender, number> = { source: 1, destination: 2 };

/** A frame as it came off the socket: its payload is the socket's own chunks, not a copy. */
export class Frame {
  constructor(
    readonly type: MessageType,
    readonly parts: readonly Buffer[],
    readonly length: number,
    /**
     * A Pages frame whose pages the reader already placed in memory: the payload holds the run list and checksums
     * only.
     */
    readonly placed = false,
  ) {}

  /** The payload as one buffer (copied only when it spans chunks). */
  get payload(): Buffer {
    return this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.length);
  }

  /** The first `n` payload bytes as one buffer. */
  head(n: number): Buffer {
    const first = this.parts[0];
    if (first !== undefined && first.length >= n) return first.subarray(0, n);
    return this.payload.subarray(0, n);
  }

  /** Copies payload bytes from `start` into `target` (filling it). */
  copyTo(target: Buffer, start: number): void {
    let skip = start;
    let at = 0;
    for (const part of this.parts) {
      if (at === target.length) return;
      if (skip >= part.length) {
        skip -= part.length;
        continue;
      }
      at += part.copy(target, at, skip);
      skip = 0;
    }
  }
}

export class WireError extends Error {
  override name = "WireError";
}

/** One frame as a single buffer. */
export function encodeFrame(type: MessageType, payload: Uint8Array = Buffer.alloc(0)): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER + payload.length);
  writeFrameHeader(out, type, payload.length);
  out.set(payload, FRAME_HEADER);
  return out;
}

/** Writes a frame header into `out` at 0 (for frames assembled in place). */
export function writeFrameHeader(out: Buffer, type: MessageType, payloadLength: number): void {
  out[0] = WIRE_VERSION;
  out[1] = type;
  out.writeUInt32BE(payloadLength, 2);
}

/** The payload must be exactly `bytes` long (at least, when `atLeast`). */
function expectLength(type: MessageType, p: Uint8Array, bytes: number, atLeast = false): Buffer {
  if (atLeast ? p.length < bytes : p.length !== bytes)
    throw new WireError(`memory stream: ${MessageType[type]} of ${p.length} bytes, not ${atLeast ? "≥ " : ""}${bytes}`);
  return Buffer.from(p.buffer, p.byteOffset, p.byteLength);
}

function senderOf(code: number): Sender {
  if (code === 1) return "source";
  if (code === 2) return "destination";
  throw new WireError(`memory stream: unknown sender ${code}`);
}

const HELLO_BYTES = 23;

export interface Hello {
  /** 16 bytes, the endpoint descriptors' token. */
  readonly token: Uint8Array;
  readonly sessionNumber: number;
  readonly sender: Sender;
  readonly channel: number;
  /** 0 when the sender does not know. */
  readonly channels: number;
}

export function encodeHello(h: Hello): Buffer {
  const p = Buffer.alloc(HELLO_BYTES);
  p.set(h.token.subarray(0, 16), 0);
  p.writeUInt32BE(h.sessionNumber, 16);
  p[20] = SENDER_CODE[h.sender];
  p[21] = h.channel;
  p[22] = h.channels;
  return encodeFrame(MessageType.Hello, p);
}

export function decodeHello(payload: Uint8Array): Hello {
  const p = expectLength(MessageType.Hello, payload, HELLO_BYTES);
  return {
    token: p.subarray(0, 16),
    sessionNumber: p.readUInt32BE(16),
    sender: senderOf(p[20]!),
    channel: p[21]!,
    channels: p[22]!,
  };
}

export interface HelloAck {
  readonly sender: Sender;
  /** 0 when the sender does not know. */
  readonly channels: number;
}

export function encodeHelloAck(a: HelloAck): Buffer {
  return encodeFrame(MessageType.HelloAck, Buffer.from([SENDER_CODE[a.sender], a.channels]));
}

export function decodeHelloAck(payload: Uint8Array): HelloAck {
  const p = expectLength(MessageType.HelloAck, payload, 2);
  return { sender: senderOf(p[0]!), channels: p[1]! };
}

export interface Setup {
  readonly pageSize: number;
  readonly pageCount: number;
  /** Pages frames carry a CRC-32 of each page. */
  readonly checksums: boolean;
  /** The source may send CompressedPages. */
  readonly compression: boolean;
}

export function encodeSetup(s: Setup): Buffer {
  const p = Buffer.alloc(13);
  p.writeUInt32BE(s.pageSize, 0);
  p.writeUInt32BE(s.pageCount, 4);
  p[8] = (s.checksums ? 1 : 0) | (s.compression ? 2 : 0);
  return encodeFrame(MessageType.Setup, p);
}

export function decodeSetup(payload: Uint8Array): Setup {
  const p = expectLength(MessageType.Setup, payload, 13);
  return {
    pageSize: p.readUInt32BE(0),
    pageCount: p.readUInt32BE(4),
    checksums: (p[8]! & 1) !== 0,
    compression: (p[8]! & 2) !== 0,
  };
}

export interface PassBegin {
  readonly pass: number;
  readonly pages: number;
  readonly blackout: boolean;
}

export function encodePassBegin(b: PassBegin): Buffer {
  const p = Buffer.alloc(9);
  p.writeUInt32BE(b.pass, 0);
  p.writeUInt32BE(b.pages, 4);
  p[8] = b.blackout ? 1 : 0;
  return encodeFrame(MessageType.PassBegin, p);
}

export function decodePassBegin(payload: Uint8Array): PassBegin {
  const p = expectLength(MessageType.PassBegin, payload, 9);
  return { pass: p.readUInt32BE(0), pages: p.readUInt32BE(4), blackout: p[8] === 1 };
}

export interface PassEnd {
  readonly pass: number;
  /** The blackout pass: nothing follows on the channel. */
  readonly last: boolean;
}

export function encodePassEnd(e: PassEnd): Buffer {
  const p = Buffer.alloc(5);
  p.writeUInt32BE(e.pass, 0);
  p[4] = e.last ? 1 : 0;
  return encodeFrame(MessageType.PassEnd, p);
}

export function decodePassEnd(payload: Uint8Array): PassEnd {
  const p = expectLength(MessageType.PassEnd, payload, 5);
  return { pass: p.readUInt32BE(0), last: p[4] === 1 };
}

export function encodePassAck(pass: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(pass, 0);
  return encodeFrame(MessageType.PassAck, p);
}

/** The pass a PassAck acknowledges. */
export function decodePassAck(payload: Uint8Array): number {
  return expectLength(MessageType.PassAck, payload, 4).readUInt32BE(0);
}

/** The device state, as JSON. */
export function encodeDeviceState(state: unknown): Buffer {
  return encodeFrame(MessageType.DeviceState, Buffer.from(JSON.stringify(state), "utf8"));
}

export function decodeDeviceState(payload: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString("utf8"));
  } catch (err) {
    throw new WireError(`memory stream: DeviceState is not JSON: ${(err as Error).message}`);
  }
}

/** Messages with no payload: Ready, BlackoutEnd, OfflineAck. */
export function encodeEmpty(type: MessageType.Ready | MessageType.BlackoutEnd | MessageType.OfflineAck): Buffer {
  return encodeFrame(type);
}

export interface Verify {
  /** The source's image digest, 32 bytes as hex. */
  readonly digest: string;
  readonly blackoutMs: number;
  /** When the blackout ended, ms since the epoch. */
  readonly stoppedAtMs: number;
}

export function encodeVerify(v: Verify): Buffer {
  const p = Buffer.alloc(48);
  digestBytes(v.digest).copy(p, 0);
  p.writeDoubleBE(v.blackoutMs, 32);
  p.writeDoubleBE(v.stoppedAtMs, 40);
  return encodeFrame(MessageType.Verify, p);
}

export function decodeVerify(payload: Uint8Array): Verify {
  const p = expectLength(MessageType.Verify, payload, 48);
  return { digest: p.subarray(0, 32).toString("hex"), blackoutMs: p.readDoubleBE(32), stoppedAtMs: p.readDoubleBE(40) };
}

export interface Result {
  readonly ok: boolean;
  /** The destination's image digest, 32 bytes as hex. */
  readonly digest: string;
  /** Why not, when not ok (may be empty). */
  readonly message: string;
}

export function encodeResult(r: Result): Buffer {
  const message = Buffer.from(r.message, "utf8");
  return encodeFrame(MessageType.Result, Buffer.concat([Buffer.from([r.ok ? 1 : 0]), digestBytes(r.digest), message]));
}

export function decodeResult(payload: Uint8Array): Result {
  const p = expectLength(MessageType.Result, payload, 33, true);
  return { ok: p[0] === 1, digest: p.subarray(1, 33).toString("hex"), message: p.subarray(33).toString("utf8") };
}

function digestBytes(hex: string): Buffer {
  const b = Buffer.from(hex, "hex");
  if (b.length !== 32) throw new WireError(`an image digest is 32 bytes, not ${b.length}`);
  return b;
}

export interface Abort {
  readonly reason: AbortReason;
  readonly message: string;
}

export function encodeAbort(a: Abort): Buffer {
  return encodeFrame(MessageType.Abort, Buffer.concat([Buffer.from([a.reason]), Buffer.from(a.message, "utf8")]));
}

/** An unknown reason reads as {@link AbortReason.Error}: the peer stopped either way. */
export function decodeAbort(payload: Uint8Array): Abort {
  const p = expectLength(MessageType.Abort, payload, 1, true);
  const reason = AbortReason[p[0]!] === undefined ? AbortReason.Error : (p[0] as AbortReason);
  return { reason, message: p.subarray(1).toString("utf8") };
}

/**
 * Pages are named by runs, flat `[first, count, first, count, …]`: a run is
 * `count ≥ 1` consecutive pages from `first`, all below the page count.
 */
export type PageRuns = readonly number[];

/** The most runs one Pages or CompressedPages frame may hold. */
export const MAX_RUNS_PER_FRAME = 256;

/** The bytes of a run list of `runs` runs (`runs u32`, then the pairs). */
export function runListBytes(runs: number): number {
  return 4 + 8 * runs;
}

/**
 * The head of a Pages or CompressedPages frame: the frame header, the run
 * list, then `sumBytes` left for the checksums, which the caller writes at
 * `sumsAt`; `dataBytes` of page data (or deflate) follow in other buffers.
 */
export function encodePagesHead(
  type: MessageType.Pages | MessageType.CompressedPages,
  runs: PageRuns,
  sumBytes: number,
  dataBytes: number,
): { head: Buffer; sumsAt: number } {
  const listBytes = runListBytes(runs.length / 2);
  const head = Buffer.allocUnsafe(FRAME_HEADER + listBytes + sumBytes);
  writeFrameHeader(head, type, listBytes + sumBytes + dataBytes);
  head.writeUInt32BE(runs.length / 2, FRAME_HEADER);
  for (let k = 0; k < runs.length; k++) head.writeUInt32BE(runs[k]!, FRAME_HEADER + 4 + 4 * k);
  return { head, sumsAt: FRAME_HEADER + listBytes };
}

/** The number of runs a run list says it holds, from its first 4 bytes. */
export function runCount(list: Uint8Array): number {
  return Buffer.from(list.buffer, list.byteOffset, list.byteLength).readUInt32BE(0);
}

/**
 * A run list (`runs u32`, then the pairs; `list` exactly that long): its
 * runs and their total of pages. Refuses an empty list, and a run that is
 * empty or reaches past `pageCount`.
 */
export function decodeRunList(list: Uint8Array, pageCount: number): { runs: number[]; pages: number } {
  const b = Buffer.from(list.buffer, list.byteOffset, list.byteLength);
  const n = b.length >= 4 ? b.readUInt32BE(0) : 0;
  if (n < 1 || b.length !== runListBytes(n))
    throw new WireError(`memory stream: a run list of ${b.length} bytes with ${n} runs`);
  const runs: number[] = [];
  let pages = 0;
  for (let at = 4; at < b.length; at += 8) {
    const first = b.readUInt32BE(at);
    const count = b.readUInt32BE(at + 4);
    checkRun(first, count, pageCount);
    runs.push(first, count);
    pages += count;
  }
  return { runs, pages };
}

/** Refuses a run that is empty or reaches past `pageCount`. */
export function checkRun(first: number, count: number, pageCount: number): void {
  if (count < 1 || first + count > pageCount)
    throw new WireError(`memory stream: pages ${first} … ${first + count - 1} out of range`);
}

/** A ZeroPages frame: these runs of pages are zero. */
export function encodeZeroPages(runs: PageRuns): Buffer {
  const frame = Buffer.allocUnsafe(FRAME_HEADER + runs.length * 4);
  writeFrameHeader(frame, MessageType.ZeroPages, runs.length * 4);
  for (let k = 0; k < runs.length; k++) frame.writeUInt32BE(runs[k]!, FRAME_HEADER + 4 * k);
  return frame;
}

/** The zero runs of a ZeroPages payload, each checked against `pageCount`. */
export function decodeZeroPages(payload: Uint8Array, pageCount: number): number[] {
  if (payload.length % 8 !== 0) throw new WireError(`memory stream: ZeroPages frame of ${payload.length} bytes`);
  const p = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  const runs: number[] = [];
  for (let at = 0; at < p.length; at += 8) {
    const first = p.readUInt32BE(at);
    const count = p.readUInt32BE(at + 4);
    checkRun(first, count, pageCount);
    runs.push(first, count);
  }
  return runs;
}
