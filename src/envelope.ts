import { create } from "@bufbuild/protobuf";
import { AnySchema, type Any } from "@bufbuild/protobuf/wkt";
import { HEADER_LENGTH, MessageType, writeHeader } from "./frame.js";
import type { EncodedMessage } from "./message-codec.js";
import { OversizedMessageError } from "./ttrpc-error.js";
import { receivedTimeoutNano } from "./deadline.js";
import { Reader, wireTypeIs } from "./wire-reader.js";

// The ttrpc envelope (ttrpc.Request, ttrpc.Response, google.rpc.Status) coded
// by hand: they are small fixed messages and encoding them with toBinary was
// the main per-call cost (it also copies a nested payload twice). The output
// is byte-identical to protobuf's (fields in number order, proto3 defaults
// omitted); test/envelope.test.ts holds it to protoc-gen-es's encoding.

/** A decoded `ttrpc.Request`. `payload` is a view into the frame. */
export interface RequestEnvelope {
  service: string;
  method: string;
  payload: Uint8Array;
  /** Relative timeout in nanoseconds; 0 means none. */
  timeoutNano: number;
  metadata: [string, string][];
}

/** A decoded `ttrpc.Response`; `status` undefined when absent (which means OK). */
export interface ResponseEnvelope {
  status: StatusEnvelope | undefined;
  payload: Uint8Array;
}

/** `google.rpc.Status`. */
export interface StatusEnvelope {
  code: number;
  message: string;
  details: Any[];
}

const utf8 = new TextEncoder();

// Payloads up to this size are copied into the frame buffer: one write beats
// three. Larger ones are written as their own buffer, never copied.
const COPY_LIMIT = 16 * 1024;

function varintSize(n: number): number {
  let size = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function writeVarint(buf: Uint8Array, pos: number, n: number): number {
  while (n >= 128) {
    buf[pos++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[pos++] = n;
  return pos;
}

function strBytes(s: string): Uint8Array {
  return s.length === 0 ? EMPTY : utf8.encode(s);
}

const EMPTY = new Uint8Array(0);

// Service and method names repeat on every call: encode each once.
const names = new Map<string, Uint8Array>();
function nameBytes(s: string): Uint8Array {
  let b = names.get(s);
  if (b === undefined) {
    b = strBytes(s);
    if (names.size < 4096) names.set(s, b);
  }
  return b;
}

function lenFieldSize(len: number): number {
  return 1 + varintSize(len) + len;
}

function writeLenField(buf: Uint8Array, pos: number, tag: number, bytes: Uint8Array): number {
  buf[pos++] = tag;
  pos = writeVarint(buf, pos, bytes.length);
  buf.set(bytes, pos);
  return pos + bytes.length;
}

/**
 * Encodes a whole Request frame (header included) as one or three buffers,
 * to be written back to back. Throws OversizedMessageError, having written
 * nothing, when the envelope would be over `maxLength`.
 */
export function encodeRequestFrame(
  streamId: number,
  flags: number,
  service: string,
  method: string,
  payload: Uint8Array | EncodedMessage,
  timeoutNano: number,
  metadata: Iterable<[string, string]>,
  maxLength = Infinity,
): Uint8Array[] {
  const parts = payload instanceof Uint8Array ? [payload] : payload.parts;
  const payloadLength = payload.length;
  const svc = nameBytes(service);
  const mth = nameBytes(method);
  const kvs: Uint8Array[] = [];
  let suffixLen = 0;
  if (timeoutNano > 0) suffixLen += 1 + varintSize(timeoutNano);
  for (const [k, v] of metadata) {
    const kb = strBytes(k);
    const vb = strBytes(v);
    const inner = (kb.length > 0 ? lenFieldSize(kb.length) : 0) + (vb.length > 0 ? lenFieldSize(vb.length) : 0);
    kvs.push(kb, vb);
    suffixLen += lenFieldSize(inner);
  }
  let prefixLen = 0;
  if (svc.length > 0) prefixLen += lenFieldSize(svc.length);
  if (mth.length > 0) prefixLen += lenFieldSize(mth.length);
  const payloadHeadLen = payloadLength > 0 ? 1 + varintSize(payloadLength) : 0;
  const total = prefixLen + payloadHeadLen + payloadLength + suffixLen;
  if (total > maxLength) throw new OversizedMessageError(total, maxLength);
  const inline = payloadLength <= COPY_LIMIT;
  const head = new Uint8Array(HEADER_LENGTH + prefixLen + payloadHeadLen + (inline ? payloadLength + suffixLen : 0));
  writeHeader(head, 0, total, streamId, MessageType.Request, flags);
  let pos = HEADER_LENGTH;
  if (svc.length > 0) pos = writeLenField(head, pos, 0x0a, svc);
  if (mth.length > 0) pos = writeLenField(head, pos, 0x12, mth);
  if (payloadLength > 0) {
    head[pos++] = 0x1a;
    pos = writeVarint(head, pos, payloadLength);
  }
  let tail = head;
  if (inline) {
    for (const p of parts) {
      head.set(p, pos);
      pos += p.length;
    }
  } else {
    tail = new Uint8Array(suffixLen);
    pos = 0;
  }
  if (timeoutNano > 0) {
    tail[pos++] = 0x20;
    pos = writeVarint(tail, pos, timeoutNano);
  }
  for (let i = 0; i < kvs.length; i += 2) {
    const kb = kvs[i]!;
    const vb = kvs[i + 1]!;
    tail[pos++] = 0x2a;
    pos = writeVarint(
      tail,
      pos,
      (kb.length > 0 ? lenFieldSize(kb.length) : 0) + (vb.length > 0 ? lenFieldSize(vb.length) : 0),
    );
    if (kb.length > 0) pos = writeLenField(tail, pos, 0x0a, kb);
    if (vb.length > 0) pos = writeLenField(tail, pos, 0x12, vb);
  }
  return inline ? [head] : suffixLen > 0 ? [head, ...parts, tail] : [head, ...parts];
}

function statusBodySize(code: number, msg: Uint8Array, details: Any[]): number {
  let n = 0;
  if (code !== 0) n += 1 + (code < 0 ? 10 : varintSize(code));
  if (msg.length > 0) n += lenFieldSize(msg.length);
  for (const d of details) n += lenFieldSize(anySize(d));
  return n;
}

function anySize(a: Any): number {
  const url = utf8.encode(a.typeUrl).length;
  return (url > 0 ? lenFieldSize(url) : 0) + (a.value.length > 0 ? lenFieldSize(a.value.length) : 0);
}

function writeStatus(buf: Uint8Array, pos: number, code: number, msg: Uint8Array, details: Any[]): number {
  if (code !== 0) {
    buf[pos++] = 0x08;
    if (code < 0) {
      // int32 negatives are sign-extended to 64 bits: ten bytes.
      let v = BigInt.asUintN(64, BigInt(code));
      while (v >= 128n) {
        buf[pos++] = Number(v & 0x7fn) | 0x80;
        v >>= 7n;
      }
      buf[pos++] = Number(v);
    } else {
      pos = writeVarint(buf, pos, code);
    }
  }
  if (msg.length > 0) pos = writeLenField(buf, pos, 0x12, msg);
  for (const d of details) {
    buf[pos++] = 0x1a;
    pos = writeVarint(buf, pos, anySize(d));
    const url = utf8.encode(d.typeUrl);
    if (url.length > 0) pos = writeLenField(buf, pos, 0x0a, url);
    if (d.value.length > 0) pos = writeLenField(buf, pos, 0x12, d.value);
  }
  return pos;
}

/** Encodes a whole Response frame (header included) as one or two buffers; throws when over `maxLength`. */
export function encodeResponseFrame(
  streamId: number,
  status: StatusEnvelope | undefined,
  payload: Uint8Array | EncodedMessage,
  maxLength = Infinity,
): Uint8Array[] {
  const parts = payload instanceof Uint8Array ? [payload] : payload.parts;
  const payloadLength = payload.length;
  const msg = status === undefined ? EMPTY : strBytes(status.message);
  const sLen = status === undefined ? 0 : statusBodySize(status.code, msg, status.details);
  const statusLen = status === undefined ? 0 : 1 + varintSize(sLen) + sLen;
  const payloadHead = payloadLength > 0 ? 1 + varintSize(payloadLength) : 0;
  const total = statusLen + payloadHead + payloadLength;
  if (total > maxLength) throw new OversizedMessageError(total, maxLength);
  const inline = payloadLength <= COPY_LIMIT;
  const head = new Uint8Array(HEADER_LENGTH + statusLen + payloadHead + (inline ? payloadLength : 0));
  writeHeader(head, 0, total, streamId, MessageType.Response, 0);
  let pos = HEADER_LENGTH;
  if (status !== undefined) {
    head[pos++] = 0x0a;
    pos = writeVarint(head, pos, sLen);
    pos = writeStatus(head, pos, status.code, msg, status.details);
  }
  if (payloadLength > 0) {
    head[pos++] = 0x12;
    pos = writeVarint(head, pos, payloadLength);
    if (inline) {
      for (const p of parts) {
        head.set(p, pos);
        pos += p.length;
      }
    }
  }
  return inline ? [head] : [head, ...parts];
}

/** Decodes a `ttrpc.Request`; throws on malformed input. */
export function decodeRequest(buf: Uint8Array): RequestEnvelope {
  const r = new Reader(buf);
  const req: RequestEnvelope = { service: "", method: "", payload: EMPTY, timeoutNano: 0, metadata: [] };
  while (!r.done) {
    const [f, wt] = r.tag();
    switch (f) {
      case 1:
        if (!wireTypeIs(r, f, wt, 2)) break;
        req.service = r.string();
        break;
      case 2:
        if (!wireTypeIs(r, f, wt, 2)) break;
        req.method = r.string();
        break;
      case 3:
        if (!wireTypeIs(r, f, wt, 2)) break;
        req.payload = r.bytes();
        break;
      case 4: {
        if (!wireTypeIs(r, f, wt, 0)) break;
        const start = r.pos;
        const v = r.varint();
        req.timeoutNano = receivedTimeoutNano(v, r.pos - start, r.buf[r.pos - 1]!);
        break;
      }
      case 5: {
        if (!wireTypeIs(r, f, wt, 2)) break;
        const kr = new Reader(r.bytes());
        let k = "";
        let v = "";
        while (!kr.done) {
          const [kf, kwt] = kr.tag();
          if (kf === 1 && kwt === 2) k = kr.string();
          else if (kf === 2 && kwt === 2) v = kr.string();
          else kr.skip(kwt, kf);
        }
        req.metadata.push([k, v]);
        break;
      }
      default:
        r.skip(wt, f);
    }
  }
  return req;
}

/** Decodes a `ttrpc.Response`; throws on malformed input. */
export function decodeResponse(buf: Uint8Array): ResponseEnvelope {
  const r = new Reader(buf);
  const res: ResponseEnvelope = { status: undefined, payload: EMPTY };
  while (!r.done) {
    const [f, wt] = r.tag();
    if (f === 1) {
      if (wireTypeIs(r, f, wt, 2)) res.status = decodeStatus(r.bytes());
    } else if (f === 2) {
      if (wireTypeIs(r, f, wt, 2)) res.payload = r.bytes();
    } else {
      r.skip(wt, f);
    }
  }
  return res;
}

function decodeStatus(buf: Uint8Array): StatusEnvelope {
  const r = new Reader(buf);
  const s: StatusEnvelope = { code: 0, message: "", details: [] };
  while (!r.done) {
    const [f, wt] = r.tag();
    if (f === 1 && wt === 0) s.code = r.int32();
    else if (f === 2 && wt === 2) s.message = r.string();
    else if (f === 3 && wt === 2) {
      const ar = new Reader(r.bytes());
      let typeUrl = "";
      let value: Uint8Array = EMPTY;
      while (!ar.done) {
        const [af, awt] = ar.tag();
        if (af === 1 && awt === 2) typeUrl = ar.string();
        else if (af === 2 && awt === 2) value = ar.bytes().slice();
        else ar.skip(awt, af);
      }
      s.details.push(create(AnySchema, { typeUrl, value }));
    } else r.skip(wt, f);
  }
  return s;
}
