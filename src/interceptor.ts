import type { DescMethod } from "@bufbuild/protobuf";
import type { Metadata } from "./metadata.js";
import type { HandlerContext } from "./service-impl.js";

interface RequestCommon {
  /** The ttrpc service name on the wire: the proto full name, e.g. `containerd.task.v2.Task`. */
  readonly service: string;
  readonly method: DescMethod;
  /** `/service/Method`, as Go's interceptors see it. */
  readonly fullMethod: string;
  /** Request metadata. Client interceptors may change it: it is this call's own copy. */
  readonly metadata: Metadata;
  readonly signal: AbortSignal;
  /** Time left for the call when it started, in milliseconds; undefined without a deadline. */
  readonly timeoutMs: number | undefined;
  /** On the server: the handler's context. */
  readonly context?: HandlerContext;
}

/** A unary call. On the client `message` is the caller's init object; on the server the decoded message. */
export interface UnaryRequest extends RequestCommon {
  readonly stream: false;
  readonly message: unknown;
}

/**
 * A streaming call (server, client or bidi streaming: `method.methodKind`
 * tells). A server-streaming request is a stream of exactly one message.
 */
export interface StreamRequest extends RequestCommon {
  readonly stream: true;
  readonly messages: AsyncIterable<unknown>;
}

/** What a unary call's interceptor chain returns: the response message. */
export interface UnaryResponse {
  readonly stream: false;
  readonly message: unknown;
}

/** What a streaming call's interceptor chain returns: the response messages. */
export interface StreamResponse {
  readonly stream: true;
  readonly messages: AsyncIterable<unknown>;
}

/**
 * The next step of a call, as an interceptor sees it. A unary request gets a
 * unary response and a stream request a stream response.
 */
export type CallFn = (req: UnaryRequest | StreamRequest) => Promise<UnaryResponse | StreamResponse>;

/**
 * An interceptor wraps the rest of the call: `(next) => async (req) => {
 * ...; const res = await next(req); ...; return res; }`. The same type serves
 * clients and servers, unary and streaming calls (unlike Go, whose stream
 * interceptors cannot be set: containerd/ttrpc#148). The first interceptor
 * given is the outermost. On the server, a unary response is encoded inside
 * the chain: a handler returning nothing or a response over the size limit
 * rejects what the interceptors await, with the status the client gets.
 */
export type Interceptor = (next: CallFn) => CallFn;

/** Wraps `last` in the interceptors, the first outermost. */
export function applyInterceptors(last: CallFn, interceptors: readonly Interceptor[] | undefined): CallFn {
  let fn = last;
  if (interceptors) for (let i = interceptors.length - 1; i >= 0; i--) fn = interceptors[i]!(fn);
  return fn;
}
