import { SpanKind, SpanStatusCode, type Span, context, trace } from "@opentelemetry/api";
import { Code } from "../code.js";
import type { Interceptor } from "../interceptor.js";
import { TtrpcError } from "../ttrpc-error.js";
import { observeStream } from "./observed-stream.js";
import {
  instruments,
  messageCounter,
  metadataSetter,
  type OtelOptions,
  STATUS_CODE_ATTRIBUTE,
  spanInfo,
} from "./instrumentation.js";

/**
 * A client interceptor that traces every call as otelttrpc's
 * UnaryClientInterceptor does: a CLIENT span named `service/Method`, a child
 * of the active context, whose context is injected into the call's metadata.
 * Streams are traced too (Go cannot: containerd/ttrpc#148); their span lasts
 * until the response stream ends.
 *
 * @example
 * ```ts
 * import { connect } from "ttrpc-es";
 * import { otelClientInterceptor } from "ttrpc-es/otel";
 *
 * const client = await connect("unix:/run/example.sock", { interceptors: [otelClientInterceptor()] });
 * ```
 */
export function otelClientInterceptor(options: OtelOptions = {}): Interceptor {
  const inst = instruments(options);
  return (next) => async (req) => {
    const { name, attributes } = spanInfo(req.fullMethod);
    const parent = context.active();
    const span = inst.tracer.startSpan(name, { kind: SpanKind.CLIENT, attributes }, parent);
    const ctx = trace.setSpan(parent, span);
    inst.propagator.inject(ctx, req.metadata, metadataSetter);
    const sent = messageCounter(span, "SENT", inst.sent);
    const received = messageCounter(span, "RECEIVED", inst.received);
    if (!req.stream) {
      sent();
      try {
        const res = await context.with(ctx, () => next(req));
        received();
        finish(span);
        return res;
      } catch (e) {
        received(); // as otelttrpc: the reply event is added whether or not the call failed
        finish(span, e);
        throw e;
      }
    }
    const request = inst.sent
      ? { ...req, messages: observeStream(req.messages, { onMessage: sent, onEnd: () => {} }) }
      : req;
    let res: Awaited<ReturnType<typeof next>>;
    try {
      res = await context.with(ctx, () => next(request));
    } catch (e) {
      finish(span, e);
      throw e;
    }
    if (!res.stream) {
      finish(span); // not a shape the runtime produces for a stream request
      return res;
    }
    return {
      stream: true,
      messages: observeStream(res.messages, { onMessage: received, onEnd: (e) => finish(span, e) }),
    };
  };
}

// Any error makes a client span an error, with the status message (otelttrpc).
function finish(span: Span, error?: unknown): void {
  if (error === undefined) {
    span.setAttribute(STATUS_CODE_ATTRIBUTE, Code.Ok);
  } else {
    const err = TtrpcError.from(error);
    span.setAttribute(STATUS_CODE_ATTRIBUTE, err.code);
    span.setStatus({ code: SpanStatusCode.ERROR, message: err.rawMessage });
  }
  span.end();
}
