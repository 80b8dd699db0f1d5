// What both tracing interceptors share, as containerd/otelttrpc does it:
// the instruments resolved from the options, span names and attributes, which
// status codes make a server span an error, the metadata carrier of the trace
// context, and message events.
import {
  type Attributes,
  type Histogram,
  type MeterProvider,
  type Span,
  type TextMapGetter,
  type TextMapPropagator,
  type TextMapSetter,
  type Tracer,
  type TracerProvider,
  ValueType,
  metrics,
  propagation,
  trace,
} from "@opentelemetry/api";
import { Code } from "../code.js";
import type { Metadata } from "../metadata.js";

/** The instrumentation scope, otelttrpc's own, so spans line up with Go services in one trace. */
export const INSTRUMENTATION_NAME = "github.com/containerd/otelttrpc";

/** otelttrpc's attribute for the numeric status code of a call. */
export const STATUS_CODE_ATTRIBUTE = "rpc.ttrpc.status_code";

/**
 * A span name and its attributes from `/service/Method`, as otelttrpc's
 * `ParseFullMethod`: the name is the method without the leading slash.
 */
export function spanInfo(fullMethod: string): SpanInfo {
  let info = cache.get(fullMethod);
  if (info === undefined) {
    info = parse(fullMethod);
    // Methods are few (a server only traces registered ones); the bound is for a client fed arbitrary names.
    if (cache.size >= 1024) cache.clear();
    cache.set(fullMethod, info);
  }
  return info;
}

interface SpanInfo {
  readonly name: string;
  readonly attributes: Readonly<Attributes>;
}

const cache = new Map<string, SpanInfo>();

function parse(fullMethod: string): SpanInfo {
  const name = fullMethod.replace(/^\/+/, "");
  const attributes: Attributes = { "rpc.system": "ttrpc" };
  const i = name.indexOf("/");
  if (i < 0) return { name, attributes };
  const service = name.slice(0, i);
  const method = name.slice(i + 1);
  if (service !== "") attributes["rpc.service"] = service;
  if (method !== "") attributes["rpc.method"] = method;
  return { name, attributes };
}

// otelttrpc's serverStatus: a server span is an error only for the codes that
// mean the server failed; the rest are the caller's doing.
const SERVER_ERROR_CODES: ReadonlySet<Code> = new Set([
  Code.Unknown,
  Code.DeadlineExceeded,
  Code.Unimplemented,
  Code.Internal,
  Code.Unavailable,
  Code.DataLoss,
]);

export function isServerError(code: Code): boolean {
  return SERVER_ERROR_CODES.has(code);
}

/** Options of the tracing interceptors; the same names as otelttrpc's `With...` options. */
export interface OtelOptions {
  /** Default: the global propagator (containerd sets W3C TraceContext and Baggage). */
  propagator?: TextMapPropagator;
  /** Default: the global tracer provider. */
  tracerProvider?: TracerProvider;
  /** Default: the global meter provider. Only servers record (`rpc.server.duration`). */
  meterProvider?: MeterProvider;
  /**
   * Message events to add to spans (`message` events with `message.type`
   * SENT or RECEIVED and `message.id`, counting from 1 in each direction).
   * Default: none, as otelttrpc.
   */
  messageEvents?: readonly ("sent" | "received")[];
}

// The schema otelttrpc's meter declares (semconv v1.17.0).
const SCHEMA_URL = "https://opentelemetry.io/schemas/1.17.0";

/** What an interceptor needs, resolved from its options. */
export interface Instruments {
  readonly tracer: Tracer;
  readonly propagator: Pick<TextMapPropagator, "inject" | "extract">;
  readonly sent: boolean;
  readonly received: boolean;
  /** The server duration histogram, looked up per call (see below). */
  histogram(): Histogram;
}

export function instruments(options: OtelOptions): Instruments {
  // The global tracer provider is a proxy that follows a later SDK start; the
  // global meter provider is not, so the meter is looked up again whenever the
  // provider changed (an interceptor made before NodeSDK.start() still records).
  let provider: MeterProvider | undefined;
  let histogram: Histogram | undefined;
  return {
    tracer: (options.tracerProvider ?? trace.getTracerProvider()).getTracer(INSTRUMENTATION_NAME),
    // The `propagation` API object defers to the global propagator at each call.
    propagator: options.propagator ?? propagation,
    sent: options.messageEvents?.includes("sent") ?? false,
    received: options.messageEvents?.includes("received") ?? false,
    histogram() {
      const current = options.meterProvider ?? metrics.getMeterProvider();
      if (current !== provider || histogram === undefined) {
        provider = current;
        histogram = current
          .getMeter(INSTRUMENTATION_NAME, undefined, { schemaUrl: SCHEMA_URL })
          .createHistogram("rpc.server.duration", { unit: "ms", valueType: ValueType.INT });
      }
      return histogram;
    },
  };
}

// W3C trace context travels in the Request metadata under the propagator's
// lower-case keys (`traceparent`, `tracestate`, `baggage`), as otelttrpc's
// metadataSupplier puts it there: Set replaces a key, other keys stay.

export const metadataGetter: TextMapGetter<Metadata> = {
  get: (md, key) => md.get(key),
  keys: (md) => Object.keys(md.toJSON()),
};

export const metadataSetter: TextMapSetter<Metadata> = {
  set: (md, key, value) => {
    md.set(key, value);
  },
};

/** Adds otelttrpc's `message` event: `message.type` SENT or RECEIVED, `message.id` from 1. */
export function messageEvent(span: Span, type: "SENT" | "RECEIVED", id: number): void {
  if (span.isRecording()) span.addEvent("message", { "message.type": type, "message.id": id });
}

/** A counter of one direction's messages that adds an event per message when enabled. */
export function messageCounter(span: Span, type: "SENT" | "RECEIVED", enabled: boolean): () => void {
  let id = 0;
  return enabled ? () => messageEvent(span, type, ++id) : () => {};
}
