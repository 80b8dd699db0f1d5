import { Code } from "./code.js";
import {
  applyInterceptors,
  type CallFn,
  type Interceptor,
  type StreamRequest,
  type StreamResponse,
  type UnaryRequest,
} from "./interceptor.js";
import type { ServerCall } from "./server-call.js";
import type { HandlerContext } from "./service-impl.js";
import { TtrpcError } from "./ttrpc-error.js";

/** How a server calls its handlers: through its interceptors, the first outermost. */
export interface Dispatch {
  /** False without interceptors: handlers are then called directly, no request object, no extra promise. */
  readonly intercepted: boolean;
  readonly unary: CallFn;
  readonly stream: CallFn;
}

type OnServer<R> = R & { context: ServerCall };

export function createDispatch(interceptors: readonly Interceptor[] | undefined): Dispatch {
  return {
    intercepted: (interceptors?.length ?? 0) > 0,
    unary: applyInterceptors(
      (async (req: OnServer<UnaryRequest>) => ({
        stream: false,
        message: await req.context.impl(req.message, req.context),
      })) as CallFn,
      interceptors,
    ),
    stream: applyInterceptors(
      (async (req: OnServer<StreamRequest>) => ({
        stream: true,
        messages: await handlerMessages(req.context, req.messages),
      })) as CallFn,
      interceptors,
    ),
  };
}

/**
 * The messages a streaming call's handler answers with. Without interceptors
 * the handler is called directly: no request object, and no signal,
 * metadata or AbortController made for a handler that never asks (per open
 * stream, that was most of a stream's memory).
 */
export function streamHandler(
  dispatch: Dispatch,
  call: ServerCall,
  messages: AsyncIterable<unknown>,
): Promise<AsyncIterable<unknown>> | AsyncIterable<unknown> {
  if (!dispatch.intercepted) return handlerMessages(call, messages);
  return dispatch.stream({ ...requestOf(call), stream: true, messages }).then((r) => (r as StreamResponse).messages);
}

/** The call as an interceptor sees it. */
export function requestOf(call: ServerCall) {
  return {
    service: call.service,
    method: call.method,
    fullMethod: call.fullMethod,
    metadata: call.metadata,
    signal: call.signal,
    timeoutMs: call.timeoutMs(),
    context: call as HandlerContext,
  };
}

function handlerMessages(
  call: ServerCall,
  messages: AsyncIterable<unknown>,
): Promise<AsyncIterable<unknown>> | AsyncIterable<unknown> {
  const impl = call.impl;
  switch (call.method.methodKind) {
    case "server_streaming":
      if (messages instanceof Once) return impl(messages.value, call) as AsyncIterable<unknown>;
      return first(messages).then((m) => impl(m, call) as AsyncIterable<unknown>);
    case "client_streaming":
      return one(impl(messages, call) as Promise<unknown>);
    default:
      return impl(messages, call) as AsyncIterable<unknown>;
  }
}

/**
 * The one request message of a server-streaming call. Handed to the handler
 * without an await when no interceptor replaced it, so handlers start in the
 * order their requests arrived (a stream opened before a unary call on the
 * same connection is set up before that call runs).
 */
export class Once<T> implements AsyncIterable<T> {
  constructor(readonly value: T) {}
  async *[Symbol.asyncIterator]() {
    yield this.value;
  }
}

async function first<T>(it: AsyncIterable<T>): Promise<T> {
  for await (const v of it) return v;
  throw new TtrpcError("ttrpc: server-streaming call without a request message", Code.Internal);
}

async function* one<T>(p: Promise<T>) {
  yield await p;
}
