// A traced ttrpc-es server in a process of its own, for the cross-process
// test: `node child-server.js SOCKET`. Prints READY once listening; on a
// "spans" line on stdin, prints its finished spans as one JSON line; exits
// when stdin closes. Imports by relative path: it is compiled and run outside
// vitest (see compileForTest).
import { createInterface } from "node:readline";
import { trace } from "@opentelemetry/api";
import { createServer } from "../../src/index.js";
import { otelServerInterceptor } from "../../src/otel/index.js";
import { Interop } from "../../gen/ttrpces/interop/v1/interop_pb.js";
import { installGlobalSdk } from "./otel-sdk.js";

const sdk = installGlobalSdk();
const activeSpanId = () => trace.getActiveSpan()?.spanContext().spanId ?? "none";

const server = createServer({ interceptors: [otelServerInterceptor({ messageEvents: ["sent", "received"] })] });
server.register(Interop, {
  echo: (_req, ctx) => ({ text: activeSpanId(), metadata: [...ctx.metadata].map(([k, v]) => `${k}=${v}`) }),
  async *serverStream(req) {
    for (let seq = 0; seq < req.count; seq++) yield { seq, text: activeSpanId() };
  },
});
await server.listen(process.argv[2]!);
process.stdout.write("READY\n");

const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (line !== "spans") return;
  const spans = sdk.exporter.getFinishedSpans().map((s) => ({
    name: s.name,
    kind: s.kind,
    traceId: s.spanContext().traceId,
    spanId: s.spanContext().spanId,
    parentSpanId: s.parentSpanContext?.spanId,
    parentIsRemote: s.parentSpanContext?.isRemote,
    scope: s.instrumentationScope.name,
    attributes: s.attributes,
    events: s.events.map((e) => e.attributes),
  }));
  process.stdout.write(`${JSON.stringify(spans)}\n`);
});
lines.on("close", () => void server.close());
