import { Code } from "./code.js";
import type { EncodedMessage } from "./message-codec.js";
import {
  applyInterceptors,
  type CallFn,
  type Interceptor,
  type StreamRequest,
  type StreamResponse,
  type UnaryRequest,
  type UnaryResponse,
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
    // The response is encoded inside the chain, so that a handler returning
    // nothing or a response over the size limit rejects what the
    // interceptors awaited: they see the status the client gets.
    unary: applyInterceptors(
      (async (req: OnServer<UnaryRequest>) => {
        const call = req.context;
        const message = await call.impl(req.message, call);
        return new EncodedResponse(message, encodeOutput(call, message));
      }) as unknown as CallFn,
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

/** A handler's unary response and its encoding, made inside the interceptor chain. */
class EncodedResponse implements UnaryResponse {
  readonly stream = false;
  readonly #of: unknown;
  constructor(
    readonly message: unknown,
    readonly encoded: EncodedMessage,
  ) {
    this.#of = message;
  }

  /** The encoding, unless an interceptor replaced the response or its message. */
  static of(res: UnaryResponse): EncodedMessage | undefined {
    return res instanceof EncodedResponse && res.#of === res.message ? res.encoded : undefined;
  }
}

/** The payload of a unary or client-streaming call's Response. */
export function encodeOutput(call: ServerCall, message: unknown): EncodedMessage {
  return call.table.encode(call.method.output, someMessage(message));
}

function someMessage(message: unknown): unknown {
  if (message === undefined || message === null) {
    throw new TtrpcError("ttrpc: handler returned no message", Code.Unknown);
  }
  return message;
}

/** The encoded response of an intercepted unary call. */
export function encodedResponse(call: ServerCall, res: UnaryResponse): EncodedMessage {
  return EncodedResponse.of(res) ?? encodeOutput(call, res.message);
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
  return dispatch.stream(requestOf(call, true, messages)).then((r) => (r as StreamResponse).messages);
}

/** The call as an interceptor sees it. */
export function requestOf(call: ServerCall, stream: false, message: unknown): UnaryRequest;
export function requestOf(call: ServerCall, stream: true, messages: AsyncIterable<unknown>): StreamRequest;
export function requestOf(call: ServerCall, stream: boolean, input: unknown): UnaryRequest | StreamRequest {
  const req: Record<string, unknown> = {
    service: call.service,
    method: call.method,
    fullMethod: call.fullMethod,
    // Made when read (own getters, so a spread copy has them): an
    // AbortController and a Metadata per call were most of what having an
    // interceptor cost.
    get metadata() {
      return call.metadata;
    },
    get signal() {
      return call.signal;
    },
    timeoutMs: call.timeoutMs(),
    context: call as HandlerContext,
    stream,
  };
  req[stream ? "messages" : "message"] = input;
  return req as unknown as UnaryRequest | StreamRequest;
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

// Checked as it is yielded, so that interceptors observing the messages see the failure.
async function* one(p: Promise<unknown>) {
  yield someMessage(await p);
}
