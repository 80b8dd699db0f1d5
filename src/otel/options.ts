import {
  type Histogram,
  type MeterProvider,
  type TextMapPropagator,
  type Tracer,
  type TracerProvider,
  ValueType,
  metrics,
  propagation,
  trace,
} from "@opentelemetry/api";
import { INSTRUMENTATION_NAME } from "./span-info.js";

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
