import { Code } from "./code.js";
import { TtrpcError } from "./ttrpc-error.js";

/**
 * Why the runtime ended a call or a connection, as `TtrpcError.reason`
 * carries it. Values are stable strings, safe to compare and to log.
 */
export const ErrorReason = {
  /** The peer closed the connection, or the transport went away under it. */
  PeerClosed: "peer-closed",
  /** This end closed the connection (`client.close()`, a server connection closed). */
  LocalClosed: "local-closed",
  /** The server is shutting down or closed; on the server, what handlers' signals say. */
  ServerShutdown: "server-shutdown",
  /** The client used all 2^31 odd stream IDs of its connection; open a new one. */
  IdsExhausted: "ids-exhausted",
  /** The peer broke the protocol (a truncated or malformed frame, an unexpected message). */
  ProtocolError: "protocol-error",
  /** A stream's reader fell too far behind and the stream was failed (Go's ErrStreamFull). */
  StreamFull: "stream-full",
} as const;
export type ErrorReason = (typeof ErrorReason)[keyof typeof ErrorReason];

/** True when `e` is a TtrpcError the runtime raised for the given reason (any of them when omitted). */
export function hasReason(e: unknown, reason?: ErrorReason): e is TtrpcError {
  return e instanceof TtrpcError && e.reason !== undefined && (reason === undefined || e.reason === reason);
}

/** The connection ended: closed by the peer or here (UNAVAILABLE). */
export function closedError(reason: "peer-closed" | "local-closed", cause?: unknown): TtrpcError {
  return new TtrpcError("ttrpc: closed", Code.Unavailable, { cause, reason });
}

/** The server stopped: `words` are Go's for the situation. */
export function shutdownError(words: string): TtrpcError {
  return new TtrpcError(words, Code.Unavailable, { reason: ErrorReason.ServerShutdown });
}

/** The peer broke the protocol; `code` is what Go answers with there. */
export function protocolError(message: string, code: Code = Code.Internal): TtrpcError {
  return new TtrpcError(message, code, { reason: ErrorReason.ProtocolError });
}

/** A stream's reader fell behind past the limit and its grace period. */
export function streamFullError(): TtrpcError {
  return new TtrpcError("ttrpc: stream buffer full", Code.ResourceExhausted, { reason: ErrorReason.StreamFull });
}
