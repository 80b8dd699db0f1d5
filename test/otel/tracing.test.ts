// The tracing interceptors of `ttrpc-es/otel` against the real OpenTelemetry
// SDK (in-memory span exporter, on-demand metric reader) on real unix sockets:
// otelttrpc's span names, kinds, attributes, status rules, message events and
// histogram, for unary calls and the three stream shapes.
import { describe, expect, it } from "vitest";
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, propagation, trace } from "@opentelemetry/api";
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { Code, type Interceptor } from "ttrpc-es";
import { INSTRUMENTATION_NAME, otelClientInterceptor, otelServerInterceptor, type OtelOptions } from "ttrpc-es/otel";
import { Interop, drain, interopImpl, startPair } from "../common.js";
import { installGlobalSdk, tracerProviderWithExporter } from "./otel-sdk.js";

const sdk = installGlobalSdk();
const SERVICE = "ttrpces.interop.v1.Interop";

async function tracedPair(
  opts: {
    client?: OtelOptions;
    server?: OtelOptions;
    impl?: Parameters<typeof startPair>[0] extends infer P ? (P extends { impl?: infer I } ? I : never) : never;
  } = {},
) {
  sdk.exporter.reset();
  const client: Interceptor[] = [otelClientInterceptor(opts.client)];
  const server: Interceptor[] = [otelServerInterceptor(opts.server)];
  return startPair({
    client: { interceptors: client },
    server: { interceptors: server },
    ...(opts.impl === undefined ? {} : { impl: { ...interopImpl, ...opts.impl } }),
  });
}

function spans(kind: SpanKind): ReadableSpan[] {
  return sdk.exporter.getFinishedSpans().filter((s) => s.kind === kind);
}

function only(kind: SpanKind): ReadableSpan {
  const found = spans(kind);
  expect(found).toHaveLength(1);
  return found[0]!;
}

function events(span: ReadableSpan) {
  return span.events.map((e) => `${e.name} ${e.attributes?.["message.type"]} ${e.attributes?.["message.id"]}`);
}

describe("unary calls", () => {
  it("a client span and a server span, named and attributed as otelttrpc, the server's a child of the client's", async () => {
    const { client } = await tracedPair();
    const res = await client.unary(Interop.method.echo, { text: "hi" }, { metadata: { "x-kept": "yes" } });
    const c = only(SpanKind.CLIENT);
    const s = only(SpanKind.SERVER);
    for (const span of [c, s]) {
      expect(span.name).toBe(`${SERVICE}/Echo`);
      expect(span.instrumentationScope.name).toBe(INSTRUMENTATION_NAME);
      expect(span.attributes).toEqual({
        "rpc.system": "ttrpc",
        "rpc.service": SERVICE,
        "rpc.method": "Echo",
        "rpc.ttrpc.status_code": 0,
      });
      expect(span.status.code).toBe(SpanStatusCode.UNSET);
      expect(span.events).toEqual([]);
    }
    expect(s.spanContext().traceId).toBe(c.spanContext().traceId);
    expect(s.parentSpanContext?.spanId).toBe(c.spanContext().spanId);
    expect(s.parentSpanContext?.isRemote).toBe(true);
    // The handler saw the W3C header next to the caller's own metadata.
    const { traceId, spanId } = c.spanContext();
    expect(res.metadata).toEqual([`traceparent=00-${traceId}-${spanId}-01`, "x-kept=yes"]);
  });

  it("the client span is a child of the active span; baggage travels too", async () => {
    const { client } = await tracedPair();
    const tracer = trace.getTracer("test");
    const parent = tracer.startSpan("parent");
    const ctx = propagation.setBaggage(
      trace.setSpan(ROOT_CONTEXT, parent),
      propagation.createBaggage({ tenant: { value: "k8s.io" } }),
    );
    const res = await context.with(ctx, () => client.unary(Interop.method.echo, {}));
    parent.end();
    const c = only(SpanKind.CLIENT);
    expect(c.parentSpanContext?.spanId).toBe(parent.spanContext().spanId);
    expect(only(SpanKind.SERVER).spanContext().traceId).toBe(parent.spanContext().traceId);
    expect(res.metadata).toContain("baggage=tenant=k8s.io");
  });

  it("a traceparent already in the call's metadata is replaced, as otelttrpc's inject does", async () => {
    const { client } = await tracedPair();
    const stale = "00-11111111111111111111111111111111-2222222222222222-01";
    const res = await client.unary(Interop.method.echo, {}, { metadata: { traceparent: stale } });
    const { traceId, spanId } = only(SpanKind.CLIENT).spanContext();
    expect(res.metadata).toEqual([`traceparent=00-${traceId}-${spanId}-01`]);
  });

  it("the server span is active while the handler runs", async () => {
    const { client } = await tracedPair({
      impl: { echo: () => ({ text: trace.getActiveSpan()?.spanContext().spanId ?? "none" }) },
    });
    const res = await client.unary(Interop.method.echo, {});
    expect(res.text).toBe(only(SpanKind.SERVER).spanContext().spanId);
  });

  it("status: every error fails the client span; the server span only for otelttrpc's server-fault codes", async () => {
    const { client } = await tracedPair();
    // Unknown, DeadlineExceeded, Unimplemented, Internal, Unavailable, DataLoss (otelttrpc serverStatus).
    const serverFaults: number[] = [2, 4, 12, 13, 14, 15];
    for (let code = 1; code <= 16; code++) {
      sdk.exporter.reset();
      await expect(
        client.unary(Interop.method.echo, { failCode: code, failMessage: `m${code}` }),
      ).rejects.toMatchObject({
        code,
      });
      const c = only(SpanKind.CLIENT);
      const s = only(SpanKind.SERVER);
      expect(c.attributes["rpc.ttrpc.status_code"]).toBe(code);
      expect(s.attributes["rpc.ttrpc.status_code"]).toBe(code);
      expect(c.status).toEqual({ code: SpanStatusCode.ERROR, message: `m${code}` });
      expect(s.status).toEqual(
        serverFaults.includes(code)
          ? { code: SpanStatusCode.ERROR, message: `m${code}` }
          : { code: SpanStatusCode.UNSET },
      );
    }
  });

  it("a handler that finishes after its deadline: the server span still reports DEADLINE_EXCEEDED", async () => {
    const { client } = await tracedPair({
      impl: {
        async echo(_req, ctx) {
          await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
          return {}; // too late: the call was answered when the signal fired
        },
      },
    });
    await expect(client.unary(Interop.method.echo, {}, { timeoutMs: 20 })).rejects.toMatchObject({
      code: Code.DeadlineExceeded,
    });
    await until(() => spans(SpanKind.SERVER).length === 1);
    const s = only(SpanKind.SERVER);
    expect(s.attributes["rpc.ttrpc.status_code"]).toBe(Code.DeadlineExceeded);
    expect(s.status.code).toBe(SpanStatusCode.ERROR);
  });

  it("message events when asked: SENT and RECEIVED, id 1, on both sides, failed calls included", async () => {
    const both: OtelOptions = { messageEvents: ["sent", "received"] };
    const { client } = await tracedPair({ client: both, server: both });
    await client.unary(Interop.method.echo, {});
    expect(events(only(SpanKind.CLIENT))).toEqual(["message SENT 1", "message RECEIVED 1"]);
    expect(events(only(SpanKind.SERVER))).toEqual(["message RECEIVED 1", "message SENT 1"]);
    sdk.exporter.reset();
    await expect(client.unary(Interop.method.echo, { failCode: Code.NotFound })).rejects.toThrow();
    expect(events(only(SpanKind.CLIENT))).toEqual(["message SENT 1", "message RECEIVED 1"]);
    expect(events(only(SpanKind.SERVER))).toEqual(["message RECEIVED 1", "message SENT 1"]);
  });

  it("options: a tracer provider and a propagator of the caller's instead of the globals", async () => {
    const own = tracerProviderWithExporter();
    const { W3CTraceContextPropagator } = await import("@opentelemetry/core");
    const opts: OtelOptions = { tracerProvider: own.tracerProvider, propagator: new W3CTraceContextPropagator() };
    const { client } = await tracedPair({ client: opts });
    const ctx = propagation.setBaggage(ROOT_CONTEXT, propagation.createBaggage({ tenant: { value: "x" } }));
    const res = await context.with(ctx, () => client.unary(Interop.method.echo, {}));
    expect(spans(SpanKind.CLIENT)).toEqual([]);
    const [c] = own.exporter.getFinishedSpans();
    expect(c?.kind).toBe(SpanKind.CLIENT);
    expect(only(SpanKind.SERVER).parentSpanContext?.spanId).toBe(c?.spanContext().spanId);
    expect(res.metadata).toEqual([`traceparent=00-${c?.spanContext().traceId}-${c?.spanContext().spanId}-01`]);
  });
});

describe("streams: the span covers the whole stream", () => {
  const both: OtelOptions = { messageEvents: ["sent", "received"] };

  it("server streaming: both spans end with the stream, a message event per message", async () => {
    const { client } = await tracedPair({ client: both, server: both });
    const stream = client.serverStream(Interop.method.serverStream, { count: 3 });
    const it = stream[Symbol.asyncIterator]();
    await it.next();
    expect(spans(SpanKind.CLIENT)).toEqual([]); // still open mid-stream
    expect((await drain({ [Symbol.asyncIterator]: () => it })).messages).toHaveLength(2);
    const c = only(SpanKind.CLIENT);
    const s = only(SpanKind.SERVER);
    expect(c.name).toBe(`${SERVICE}/ServerStream`);
    expect(s.parentSpanContext?.spanId).toBe(c.spanContext().spanId);
    expect(c.attributes["rpc.ttrpc.status_code"]).toBe(0);
    expect(events(c)).toEqual(["message SENT 1", "message RECEIVED 1", "message RECEIVED 2", "message RECEIVED 3"]);
    expect(events(s)).toEqual(["message RECEIVED 1", "message SENT 1", "message SENT 2", "message SENT 3"]);
  });

  it("client streaming and bidi: one event per message in each direction", async () => {
    const { client } = await tracedPair({ client: both, server: both });
    const r = await client.clientStream(Interop.method.clientStream, [{}, {}, {}]);
    expect(r.seq).toBe(3);
    expect(events(only(SpanKind.CLIENT))).toEqual([
      "message SENT 1",
      "message SENT 2",
      "message SENT 3",
      "message RECEIVED 1",
    ]);
    expect(events(only(SpanKind.SERVER))).toEqual([
      "message RECEIVED 1",
      "message RECEIVED 2",
      "message RECEIVED 3",
      "message SENT 1",
    ]);
    sdk.exporter.reset();
    // The second request waits for the first reply, so the events interleave.
    let replied = () => {};
    const reply = new Promise<void>((resolve) => {
      replied = resolve;
    });
    async function* requests() {
      yield { text: "a" };
      await reply;
      yield { text: "b" };
    }
    const texts: string[] = [];
    for await (const m of client.bidiStream(Interop.method.bidi, requests())) {
      texts.push(m.text);
      replied();
    }
    expect(texts).toEqual(["a", "b"]);
    const c = only(SpanKind.CLIENT);
    expect(c.name).toBe(`${SERVICE}/Bidi`);
    expect(only(SpanKind.SERVER).parentSpanContext?.spanId).toBe(c.spanContext().spanId);
    expect(events(c)).toEqual(["message SENT 1", "message RECEIVED 1", "message SENT 2", "message RECEIVED 2"]);
  });

  it("a stream that fails after data: the error status and code on both spans", async () => {
    const { client } = await tracedPair();
    const { messages, error } = await drain(
      client.serverStream(Interop.method.serverStream, { count: 2, failCode: Code.Internal, failMessage: "late" }),
    );
    expect(messages).toHaveLength(2);
    expect(error).toMatchObject({ code: Code.Internal });
    for (const span of [only(SpanKind.CLIENT), only(SpanKind.SERVER)]) {
      expect(span.attributes["rpc.ttrpc.status_code"]).toBe(Code.Internal);
      expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: "late" });
    }
  });

  it("the server span is active inside a streaming handler's generator", async () => {
    const { client } = await tracedPair({
      impl: {
        async *serverStream() {
          await Promise.resolve();
          yield { text: trace.getActiveSpan()?.spanContext().spanId ?? "none" };
          await new Promise<void>((resolve) => setImmediate(resolve));
          yield { text: trace.getActiveSpan()?.spanContext().spanId ?? "none" };
        },
      },
    });
    const { messages } = await drain(client.serverStream(Interop.method.serverStream, {}));
    const id = only(SpanKind.SERVER).spanContext().spanId;
    expect(messages.map((m) => m.text)).toEqual([id, id]);
  });

  it("a stream cut by its deadline: the server span ends with DEADLINE_EXCEEDED, an error", async () => {
    const { client } = await tracedPair();
    const stream = client.serverStream(Interop.method.serverStream, { count: 2, delayMs: 60_000 }, { timeoutMs: 20 });
    expect((await drain(stream)).error).toMatchObject({ code: Code.DeadlineExceeded });
    await until(() => spans(SpanKind.SERVER).length === 1);
    const s = only(SpanKind.SERVER);
    expect(s.attributes["rpc.ttrpc.status_code"]).toBe(Code.DeadlineExceeded);
    expect(s.status.code).toBe(SpanStatusCode.ERROR);
    expect(only(SpanKind.CLIENT).attributes["rpc.ttrpc.status_code"]).toBe(Code.DeadlineExceeded);
  });

  it("a client that stops reading ends its span without an error", async () => {
    const { client } = await tracedPair();
    for await (const _ of client.serverStream(Interop.method.serverStream, { count: 10 })) break;
    const c = only(SpanKind.CLIENT);
    expect(c.status.code).toBe(SpanStatusCode.UNSET);
    expect(c.attributes["rpc.ttrpc.status_code"]).toBe(0);
  });
});

describe("rpc.server.duration", () => {
  it("one histogram in ms, otelttrpc's scope, a data point per method and status code", async () => {
    const { client } = await tracedPair();
    const before = await collectDuration();
    await client.unary(Interop.method.echo, {});
    await client.unary(Interop.method.echo, {});
    await expect(client.unary(Interop.method.echo, { failCode: Code.NotFound })).rejects.toThrow();
    await drain(client.serverStream(Interop.method.serverStream, { count: 2 }));
    const after = await collectDuration();
    const count = (points: typeof after, method: string, code: number) =>
      points.find((p) => p.attributes["rpc.method"] === method && p.attributes["rpc.ttrpc.status_code"] === code)
        ?.count ?? 0;
    expect(count(after, "Echo", 0) - count(before, "Echo", 0)).toBe(2);
    expect(count(after, "Echo", Code.NotFound) - count(before, "Echo", Code.NotFound)).toBe(1);
    expect(count(after, "ServerStream", 0) - count(before, "ServerStream", 0)).toBe(1);
    const p = after.find((x) => x.attributes["rpc.method"] === "Echo")!;
    expect(p.attributes).toMatchObject({ "rpc.system": "ttrpc", "rpc.service": SERVICE });
    expect(Number.isInteger(p.sum)).toBe(true); // whole milliseconds, as Go's int64 histogram
  });
});

/** Waits, turn by turn of the event loop, until the condition holds (no fixed delay). */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise<void>((resolve) => setImmediate(resolve));
}

async function collectDuration() {
  const { resourceMetrics, errors } = await sdk.reader.collect();
  expect(errors).toEqual([]);
  const scope = resourceMetrics.scopeMetrics.find((s) => s.scope.name === INSTRUMENTATION_NAME);
  const metric = scope?.metrics.find((m) => m.descriptor.name === "rpc.server.duration");
  if (metric === undefined) return [];
  expect(metric.descriptor.unit).toBe("ms");
  expect(scope?.scope.schemaUrl).toBe("https://opentelemetry.io/schemas/1.17.0");
  return metric.dataPoints.map((d) => {
    const v = d.value as { count: number; sum: number };
    return { attributes: d.attributes, count: v.count, sum: v.sum };
  });
}
