/**
 * The ttrpc runtime: clients, servers, calls, metadata, statuses, addresses,
 * and the wire layer for tools that speak frames. typeurl and the Migration
 * service have their own entry points (`ttrpc-es/typeurl`, `ttrpc-es/migration`).
 *
 * @module ttrpc-es
 */

export { Code, codeName, codeFromName } from "./code.js";
export { TtrpcError, OversizedMessageError, hasReason, type TtrpcErrorOptions } from "./ttrpc-error.js";
export { ErrorReason } from "./error-reason.js";
export { DuplicateServiceError } from "./service-registry.js";
export { Metadata, type MetadataInit } from "./metadata.js";
export { createClient, type Client, type ClientOptions, type CallOptions } from "./client.js";
export { connect } from "./connect.js";
export { createServer, type Server, type ServerOptions, type ListenOptions } from "./server.js";
export type {
  HandlerContext,
  PeerInfo,
  ServiceImpl,
  MethodImpl,
  UnaryImpl,
  ServerStreamingImpl,
  ClientStreamingImpl,
  BiDiStreamingImpl,
} from "./service-impl.js";
export type {
  Interceptor,
  CallFn,
  UnaryRequest,
  StreamRequest,
  UnaryResponse,
  StreamResponse,
} from "./interceptor.js";
export { parseAddress, formatAddress, dial, type Address, type DialOptions } from "./address.js";
export type { HybridVsockOptions } from "./hybrid-vsock.js";

// Below: the wire layer, for tools and tests that speak frames directly.
export { HEADER_LENGTH, DEFAULT_MAX_MESSAGE_SIZE, MessageType, Flags, encodeFrame, type Frame } from "./frame.js";
export { FrameDecoder, type FrameSink } from "./frame-decoder.js";

// Peer credentials of unix sockets (Linux; the optional koffi package is loaded on first use).
export {
  peerCredentials,
  requireSameUser,
  requireRoot,
  requireUidGid,
  type PeerCredentials,
  type CredentialsCheck,
} from "./peer-credentials.js";
