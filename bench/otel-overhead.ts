// `node dist-bench/bench/otel-overhead.js --mode plain|passthrough|noop|sdk [--seconds S] [--concurrency C]`
//
// What the tracing interceptors cost per unary call: one process, a server
// and a client on a unix socket, 16-byte Echo calls for S seconds, printing
// one JSON line with calls/s and CPU µs per call. plain: no interceptors; passthrough: one that
// only calls on (what having any interceptor costs); noop: ttrpc-es/otel
// on both sides with no SDK (the global no-op providers); sdk: a real tracer
// and meter provider, an AsyncLocalStorage context manager and W3C
// propagators, spans handed to an exporter that drops them. Run the modes
// in turn, several times (see bench/README.md for the figures).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { context, metrics, propagation, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from "@opentelemetry/core";
import { MeterProvider } from "@opentelemetry/sdk-metrics";
import { BasicTracerProvider, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { Interop } from "../gen/ttrpces/interop/v1/interop_pb.js";
import { connect, createServer, type Interceptor } from "../src/index.js";
import { otelClientInterceptor, otelServerInterceptor } from "../src/otel/index.js";
import { numberFlag, parseFlags } from "./common.js";

const flags = parseFlags(process.argv.slice(2));
const mode = flags.get("mode") ?? "plain";
const seconds = numberFlag(flags, "seconds", 3);
const concurrency = numberFlag(flags, "concurrency", 1);
if (!["plain", "passthrough", "noop", "sdk"].includes(mode))
  throw new Error(`--mode plain|passthrough|noop|sdk, not ${mode}`);

if (mode === "sdk") {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(
    new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }),
  );
  const drop = { export: (_: unknown, done: (r: { code: 0 }) => void) => done({ code: 0 }), shutdown: async () => {} };
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(drop)] }));
  metrics.setGlobalMeterProvider(new MeterProvider());
}
// passthrough: an interceptor that only calls on, the runtime's own cost of having one.
const passthrough: Interceptor = (next) => (req) => next(req);
const pick = (otel: () => Interceptor): Interceptor[] =>
  mode === "plain" ? [] : mode === "passthrough" ? [passthrough] : [otel()];
const serverInterceptors = pick(otelServerInterceptor);
const clientInterceptors = pick(otelClientInterceptor);

const dir = mkdtempSync(join(tmpdir(), "ttrpc-es-otel-bench-"));
const server = createServer({ interceptors: serverInterceptors }).register(Interop, {
  echo: (req) => ({ payload: req.payload }),
});
const address = await server.listen(join(dir, "s.sock"));
const client = await connect(address, { interceptors: clientInterceptors });
const payload = new Uint8Array(16);

let calls = 0;
const worker = async (until: number) => {
  while (performance.now() < until) {
    await client.unary(Interop.method.echo, { payload });
    calls++;
  }
};
await Promise.all(Array.from({ length: concurrency }, () => worker(performance.now() + 500))); // warm-up
calls = 0;
const cpu = process.cpuUsage();
const start = performance.now();
await Promise.all(Array.from({ length: concurrency }, () => worker(start + seconds * 1000)));
const elapsed = (performance.now() - start) / 1000;
const used = process.cpuUsage(cpu);
// CPU time per call (client and server together) holds up better than calls/s on a busy machine.
const cpuMicrosPerCall = Math.round(((used.user + used.system) / calls) * 10) / 10;
process.stdout.write(
  `${JSON.stringify({ mode, concurrency, callsPerSecond: Math.round(calls / elapsed), cpuMicrosPerCall })}\n`,
);
client.close();
await server.close();
rmSync(dir, { recursive: true, force: true });
