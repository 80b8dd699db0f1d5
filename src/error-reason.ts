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
