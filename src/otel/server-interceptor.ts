import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, trace } from "@opentelemetry/api";
import { Code } from "../code.js";
import type { Interceptor, StreamRequest, UnaryRequest } from "../interceptor.js";
import { TtrpcError } from "../ttrpc-error.js";
import { observeStream } from "./observed-stream.js";
import {
  instruments,
  isServerError,
  messageCounter,
  metadataGetter,
  type OtelOptions,
  STATUS_CODE_ATTRIBUTE,
  spanInfo,
} from "./instrumentation.js";

/**
 * A server interceptor that traces every call as otelttrpc's
 * UnaryServerInterceptor does: a SERVER span named `service/Method`,
 * continuing the trace found in the request metadata, active while the
 * handler runs (for a streaming handler, while each of its messages is
 * produced), and the `rpc.server.duration` histogram in whole milliseconds.
 *
 * @example
 * ```ts
 * import { createServer } from "ttrpc-es";
 * import { otelServerInterceptor } from "ttrpc-es/otel";
 *
 * const server = createServer({ interceptors: [otelServerInterceptor()] });
 * ```
 */
export function otelServerInterceptor(options: OtelOptions = {}): Interceptor {
  const inst = instruments(options);
  return (next) => async (req) => {
    const { name, attributes } = spanInfo(req.fullMethod);
    // The root, not the active context: a server call's parent is the caller,
    // never whatever was active when the connection was accepted.
    const parent = inst.propagator.extract(ROOT_CONTEXT, req.metadata, metadataGetter);
    const span = inst.tracer.startSpan(name, { kind: SpanKind.SERVER, attributes }, parent);
    const ctx = trace.setSpan(parent, span);
    const start = performance.now();
    const sent = messageCounter(span, "SENT", inst.sent);
    const received = messageCounter(span, "RECEIVED", inst.received);
    const finish = (error?: unknown) => {
      const err = failure(error, req);
      const code = err?.code ?? Code.Ok;
      span.setAttribute(STATUS_CODE_ATTRIBUTE, code);
      if (err !== undefined && isServerError(code))
        span.setStatus({ code: SpanStatusCode.ERROR, message: err.rawMessage });
      inst
        .histogram()
        .record(Math.floor(performance.now() - start), { ...attributes, [STATUS_CODE_ATTRIBUTE]: code }, ctx);
      span.end();
    };
    if (!req.stream) {
      received();
      try {
        const res = await context.with(ctx, () => next(req));
        sent();
        finish();
        return res;
      } catch (e) {
        sent(); // as otelttrpc: the status is a sent message too
        finish(e);
        throw e;
      }
    }
    let request: StreamRequest = req;
    if (req.method.methodKind === "server_streaming") {
      // Its one message came with the Request; the runtime's fast path for it stays.
      received();
    } else if (inst.received) {
      request = { ...req, messages: observeStream(req.messages, { onMessage: received, onEnd: () => {} }) };
    }
    let res: Awaited<ReturnType<typeof next>>;
    try {
      res = await context.with(ctx, () => next(request));
    } catch (e) {
      finish(e);
      throw e;
    }
    if (!res.stream) {
      finish(); // not a shape the runtime produces for a stream request
      return res;
    }
    return {
      stream: true,
      messages: observeStream(res.messages, { onMessage: sent, onEnd: finish, context: ctx, signal: req.signal }),
    };
  };
}

// What the client is told. Once the call's signal has fired (its deadline
// passed, its connection ended) the server has answered with the signal's
// reason, whether the handler then gave up (an AbortError) or finished.
function failure(error: unknown, req: UnaryRequest | StreamRequest): TtrpcError | undefined {
  if (req.signal.aborted && (error === undefined || (error instanceof Error && error.name === "AbortError"))) {
    return TtrpcError.from(req.signal.reason);
  }
  return error === undefined ? undefined : TtrpcError.from(error);
}
