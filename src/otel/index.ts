/**
 * OpenTelemetry tracing as containerd/otelttrpc does it, for unary calls and
 * all three stream shapes. Importing this entry loads `@opentelemetry/api`
 * (an optional peer dependency); the runtime never does.
 *
 * @module ttrpc-es/otel
 */

export { otelClientInterceptor } from "./client-interceptor.js";
export { otelServerInterceptor } from "./server-interceptor.js";
export { INSTRUMENTATION_NAME, type OtelOptions, STATUS_CODE_ATTRIBUTE } from "./instrumentation.js";
