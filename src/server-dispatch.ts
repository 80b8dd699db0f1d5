import { Code } from "./code.js";
import {
  applyInterceptors,
  type CallFn,
  type Interceptor,
  type StreamRequest,
  type UnaryRequest,
} from "./interceptor.js";
import type { ServerCall } from "./server-call.js";
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
      (async (req: OnServer<StreamRequest>) => {
        const impl = req.context.impl;
        switch (req.method.methodKind) {
          case "server_streaming": {
            const request = req.messages instanceof Once ? req.messages.value : await first(req.messages);
            return { stream: true, messages: impl(request, req.context) };
          }
          case "client_streaming":
            return { stream: true, messages: one(impl(req.messages, req.context) as Promise<unknown>) };
          default:
            return { stream: true, messages: impl(req.messages, req.context) };
        }
      }) as CallFn,
      interceptors,
    ),
  };
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
