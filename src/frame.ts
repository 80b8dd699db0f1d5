/** Size of the ttrpc frame header: length (4), stream ID (4), type (1), flags (1), big-endian. */
export const HEADER_LENGTH = 10;

/** The default payload limit, 4 MiB, as in Go and Rust: a payload of exactly this size is accepted. */
export const DEFAULT_MAX_MESSAGE_SIZE = 4 << 20;

/** Frame types. */
export const MessageType = {
  /** Opens a stream; client to server; payload is a `ttrpc.Request`. */
  Request: 0x01,
  /** Final frame of a stream; server to client; payload is a `ttrpc.Response`. */
  Response: 0x02,
  /** One streamed message (raw method message bytes), either direction. */
  Data: 0x03,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/** Frame flags, written from the receiver's point of view. */
export const Flags = {
  /** The sender will send nothing more on this stream. */
  RemoteClosed: 0x01,
  /** Request of a stream on which the client will send Data frames. */
  RemoteOpen: 0x02,
  /** The frame carries no message; the payload must be empty. */
  NoData: 0x04,
} as const;

/** A decoded frame. `payload` may be a view into the read buffer. */
export interface Frame {
  streamId: number;
  type: number;
  flags: number;
  payload: Uint8Array;
}

/** Writes a frame header into `buf` at `offset`. */
export function writeHeader(
  buf: Uint8Array,
  offset: number,
  length: number,
  streamId: number,
  type: number,
  flags: number,
): void {
  buf[offset] = length >>> 24;
  buf[offset + 1] = length >>> 16;
  buf[offset + 2] = length >>> 8;
  buf[offset + 3] = length;
  buf[offset + 4] = streamId >>> 24;
  buf[offset + 5] = streamId >>> 16;
  buf[offset + 6] = streamId >>> 8;
  buf[offset + 7] = streamId;
  buf[offset + 8] = type;
  buf[offset + 9] = flags;
}

/** A whole frame as one buffer: header then payload. */
export function encodeFrame(
  streamId: number,
  type: number,
  flags: number,
  payload: Uint8Array = new Uint8Array(0),
): Uint8Array {
  const out = new Uint8Array(HEADER_LENGTH + payload.length);
  writeHeader(out, 0, payload.length, streamId, type, flags);
  out.set(payload, HEADER_LENGTH);
  return out;
}
