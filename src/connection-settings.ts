import { DEFAULT_MAX_MESSAGE_SIZE } from "./frame.js";
import { DEFAULT_STREAM_BUFFER_SIZE, DEFAULT_STREAM_FULL_GRACE_MS } from "./stream.js";

/** The limits a client's or a server's options may set for each of its connections. */
export interface ConnectionLimits {
  maxMessageSize?: number | undefined;
  streamBufferSize?: number | undefined;
  streamFullGraceMs?: number | undefined;
}

/** How one end treats its connections (see {@link CLIENT_CONNECTIONS}, {@link SERVER_CONNECTIONS}). */
export interface ConnectionBehaviour {
  /**
   * Stop reading while the socket's write buffer is over its high-water mark,
   * and go on once it drains. For servers: a client that sends requests and
   * never reads the answers must not make the server buffer without bound.
   * Never for clients: if both ends did it, they could wait on each other.
   */
  readonly pauseReadsWhileWriteBlocked: boolean;
  /**
   * Frames of streams not in the table are skipped unread (a stream the
   * caller abandoned may go on arriving; ttrpc has no cancel frame). Clients.
   */
  readonly skipUnknownStreams: boolean;
}

/**
 * The settings of every connection of a client or a server: resolved once,
 * at the top, from its options (defaults filled in) and frozen. The channel,
 * the stream table and the streams read them; none resolves its own.
 */
export interface ConnectionSettings extends ConnectionBehaviour {
  readonly maxMessageSize: number;
  /** Messages a stream may hold unread before its grace period starts. */
  readonly streamBufferSize: number;
  readonly streamFullGraceMs: number;
}

export const CLIENT_CONNECTIONS: ConnectionBehaviour = { pauseReadsWhileWriteBlocked: false, skipUnknownStreams: true };
export const SERVER_CONNECTIONS: ConnectionBehaviour = { pauseReadsWhileWriteBlocked: true, skipUnknownStreams: false };

export function connectionSettings(limits: ConnectionLimits, behaviour: ConnectionBehaviour): ConnectionSettings {
  return Object.freeze({
    maxMessageSize: limits.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE,
    streamBufferSize: limits.streamBufferSize ?? DEFAULT_STREAM_BUFFER_SIZE,
    streamFullGraceMs: limits.streamFullGraceMs ?? DEFAULT_STREAM_FULL_GRACE_MS,
    pauseReadsWhileWriteBlocked: behaviour.pauseReadsWhileWriteBlocked,
    skipUnknownStreams: behaviour.skipUnknownStreams,
  });
}
