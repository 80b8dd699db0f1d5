import type {
  DescMessage,
  DescMethod,
  DescMethodBiDiStreaming,
  DescMethodClientStreaming,
  DescMethodServerStreaming,
  DescMethodUnary,
  DescService,
  MessageInitShape,
  MessageShape,
} from "@bufbuild/protobuf";
import type { Metadata } from "./metadata.js";
import type { PeerCredentials } from "./peer-credentials.js";

/** What a handler knows about its call. */
export interface HandlerContext {
  /** The ttrpc service name the client sent. */
  readonly service: string;
  readonly method: DescMethod;
  /** `/service/Method`. */
  readonly fullMethod: string;
  /**
   * Aborted when the call's deadline (`timeout_nano`) passes (reason: a
   * DEADLINE_EXCEEDED TtrpcError), the connection closes, the server shuts
   * down hard, or the call ends.
   */
  readonly signal: AbortSignal;
  /** The request's metadata. */
  readonly metadata: Metadata;
  /** Milliseconds left until the deadline, or undefined when the call has none. */
  timeoutMs(): number | undefined;
  /** The connection the call came on. */
  readonly peer: PeerInfo;
}

/** What a server knows about a connection's peer. */
export interface PeerInfo {
  /** The listener address the connection arrived on, e.g. `unix:/run/x.sock`; "" for a Duplex handed in. */
  readonly localAddress: string;
  /** The remote address where the transport has one (TCP), else undefined. */
  readonly remoteAddress: string | undefined;
  /**
   * The peer's SO_PEERCRED (Linux unix sockets), read on first use through the
   * optional koffi package; rejects with FAILED_PRECONDITION where it cannot
   * be read (see `peerCredentials`).
   */
  readonly credentials: Promise<PeerCredentials>;
}

/** A unary method's implementation: one request in, one response (or its initializer) out. */
export type UnaryImpl<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  context: HandlerContext,
) => Promise<MessageInitShape<O>> | MessageInitShape<O>;

/** A server-streaming method's implementation: one request in, the responses yielded. */
export type ServerStreamingImpl<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  context: HandlerContext,
) => AsyncIterable<MessageInitShape<O>>;

/** A client-streaming method's implementation: the requests as they arrive, one response out. */
export type ClientStreamingImpl<I extends DescMessage, O extends DescMessage> = (
  requests: AsyncIterable<MessageShape<I>>,
  context: HandlerContext,
) => Promise<MessageInitShape<O>>;

/** A bidi-streaming method's implementation: the requests as they arrive, the responses yielded. */
export type BiDiStreamingImpl<I extends DescMessage, O extends DescMessage> = (
  requests: AsyncIterable<MessageShape<I>>,
  context: HandlerContext,
) => AsyncIterable<MessageInitShape<O>>;

/** The implementation of one method, typed from its descriptor. */
export type MethodImpl<M> =
  M extends DescMethodUnary<infer I, infer O>
    ? UnaryImpl<I, O>
    : M extends DescMethodServerStreaming<infer I, infer O>
      ? ServerStreamingImpl<I, O>
      : M extends DescMethodClientStreaming<infer I, infer O>
        ? ClientStreamingImpl<I, O>
        : M extends DescMethodBiDiStreaming<infer I, infer O>
          ? BiDiStreamingImpl<I, O>
          : never;

/**
 * The implementation of a service, typed from a protoc-gen-es `GenService`:
 * one function per method, keyed by the method's local (lowerCamelCase) name.
 */
export type ServiceImpl<S extends DescService> = {
  [K in keyof S["method"]]: MethodImpl<S["method"][K]>;
};
