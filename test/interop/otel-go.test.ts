// Tracing interop with the real github.com/containerd/otelttrpc 0.1.0 (Debian sid) on Go
// ttrpc 1.2.7 and the OpenTelemetry Go SDK: test/interop/go/otelttrpc. Traces cross both
// ways between processes, and ttrpc-es's spans carry the names, attributes, scope and
// status mapping that otelttrpc records for the same calls.
//
// Known otelttrpc 0.1.0 behaviour, asserted as such: its client interceptor wraps ttrpc's
// dispatch, which returns no error for a Response carrying a failed status (ttrpc's Call
// turns the status into an error afterwards), so its client spans of failed calls say
// status Unset and rpc.ttrpc.status_code 0. ttrpc-es records the call's real code there.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, propagation } from "@opentelemetry/api";
import type { ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { Code, connect, createServer } from "ttrpc-es";
import { otelClientInterceptor, otelServerInterceptor } from "ttrpc-es/otel";
import { Interop, interopImpl } from "../common.js";
import { installGlobalSdk } from "../otel/otel-sdk.js";
import { runGoClient, runSetupScript, startGoServer } from "./go-peer.js";

const here = fileURLToPath(new URL("./go/otelttrpc/", import.meta.url));
const peer = `${here}.build/bin/otelttrpc-peer`;

/** A span as the Go peer writes it. */
interface GoSpan {
  name: string;
  kind: string;
  trace_id: string;
  span_id: string;
  parent_span_id: string;
  parent_remote: boolean;
  status: string;
  status_description: string;
  attributes: Record<string, string>;
  scope: string;
}

const sdk = installGlobalSdk();
let dir: string;
beforeAll(async () => {
  await runSetupScript(`${here}setup.sh`);
  dir = mkdtempSync(join(tmpdir(), "ttrpc-es-otelttrpc-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The calls the Go client makes, and ours the same: OK, NOT_FOUND (the caller's fault), INTERNAL. */
const calls = [
  { text: "traced" },
  { failCode: Code.NotFound, failMessage: "not here" },
  { failCode: Code.Internal, failMessage: "broken" },
];

/** A ttrpc-es span in the Go peer's terms, to compare with otelttrpc's. */
function asGo(s: ReadableSpan) {
  const kinds: Record<number, string> = { [SpanKind.CLIENT]: "client", [SpanKind.SERVER]: "server" };
  const statuses: Record<number, string> = {
    [SpanStatusCode.UNSET]: "Unset",
    [SpanStatusCode.OK]: "Ok",
    [SpanStatusCode.ERROR]: "Error",
  };
  return {
    name: s.name,
    kind: kinds[s.kind],
    status: statuses[s.status.code],
    status_description: s.status.message ?? "",
    attributes: Object.fromEntries(Object.entries(s.attributes).map(([k, v]) => [k, String(v)])),
    scope: s.instrumentationScope.name,
  };
}
const comparable = ({ name, kind, status, status_description, attributes, scope }: GoSpan) => ({
  name,
  kind,
  status,
  status_description,
  attributes,
  scope,
});

function goServerSpans(stderr: string): GoSpan[] {
  return stderr
    .split("\n")
    .filter((l) => l.startsWith("SPAN "))
    .map((l) => JSON.parse(l.slice(5)));
}

describe("tracing across the real otelttrpc 0.1.0", () => {
  it("a Go client traced by otelttrpc: our server spans continue its trace and match otelttrpc's server spans", async () => {
    // The Go client against a ttrpc-es server.
    const path = join(dir, "ts.sock");
    const server = createServer({ interceptors: [otelServerInterceptor()] }).register(Interop, interopImpl);
    await server.listen(path);
    sdk.exporter.reset();
    const toUs = await runGoClient(peer, path, "traced").finally(() => server.close());
    const goClientSpans = (toUs.spans as GoSpan[]).filter((s) => s.kind === "client");
    const ours = sdk.exporter.getFinishedSpans();
    expect([goClientSpans.length, ours.length]).toEqual([3, 3]);
    ours.forEach((span, i) => {
      expect(span.spanContext().traceId).toBe(toUs.root_trace_id);
      expect(span.parentSpanContext?.spanId).toBe(goClientSpans[i]!.span_id);
      expect(span.parentSpanContext?.isRemote).toBe(true);
    });
    // The same client against otelttrpc's own server: the spans it records.
    const goPath = join(dir, "go.sock");
    const go = await startGoServer(peer, goPath);
    try {
      const toGo = await runGoClient(peer, goPath, "traced");
      await vi.waitFor(() => expect(goServerSpans(go.stderr())).toHaveLength(3), { timeout: 10_000 });
      const theirs = goServerSpans(go.stderr());
      expect(theirs.map((s) => s.trace_id)).toEqual([toGo.root_trace_id, toGo.root_trace_id, toGo.root_trace_id]);
      expect(ours.map(asGo)).toEqual(theirs.map(comparable));
      // What that is: OK and NOT_FOUND leave a server span Unset, INTERNAL is an Error.
      expect(theirs.map((s) => [s.status, s.attributes["rpc.ttrpc.status_code"]])).toEqual([
        ["Unset", "0"],
        ["Unset", "5"],
        ["Error", "13"],
      ]);
    } finally {
      await go.close();
    }
  });

  it("our client traced: otelttrpc's server spans continue our trace; our client spans match otelttrpc's", async () => {
    const path = join(dir, "go2.sock");
    const go = await startGoServer(peer, path);
    const client = await connect(path, { interceptors: [otelClientInterceptor()] });
    try {
      sdk.exporter.reset();
      const parent = propagation.extract(ROOT_CONTEXT, {
        traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        baggage: "tenant=k8s.io",
      });
      for (const req of calls) await context.with(parent, () => client.unary(Interop.method.echo, req)).catch(() => {});
      await vi.waitFor(() => expect(goServerSpans(go.stderr())).toHaveLength(3), { timeout: 10_000 });
      const theirs = goServerSpans(go.stderr());
      const ours = sdk.exporter.getFinishedSpans();
      expect(ours).toHaveLength(3);
      theirs.forEach((s, i) => {
        expect([s.trace_id, s.parent_span_id, s.parent_remote]).toEqual([
          "0af7651916cd43dd8448eb211c80319c",
          ours[i]!.spanContext().spanId,
          true,
        ]);
      });
      // The Go client's spans for the same three calls, from a run against this server.
      const goRun = await runGoClient(peer, path, "traced");
      const goClient = (goRun.spans as GoSpan[]).filter((s) => s.kind === "client").map(comparable);
      const mine = ours.map(asGo);
      expect(mine[0]).toEqual(goClient[0]);
      // Failed calls: the same name, scope and attribute names; otelttrpc's known miss above.
      for (const i of [1, 2]) {
        expect({ ...mine[i], status: undefined, status_description: undefined, attributes: undefined }).toEqual({
          ...goClient[i],
          status: undefined,
          status_description: undefined,
          attributes: undefined,
        });
        expect(Object.keys(mine[i]!.attributes).sort()).toEqual(Object.keys(goClient[i]!.attributes).sort());
        expect([goClient[i]!.status, goClient[i]!.attributes["rpc.ttrpc.status_code"]]).toEqual(["Unset", "0"]);
      }
      expect(mine.slice(1).map((s) => [s.status, s.status_description, s.attributes["rpc.ttrpc.status_code"]])).toEqual(
        [
          ["Error", "not here", "5"],
          ["Error", "broken", "13"],
        ],
      );
    } finally {
      client.close();
      await go.close();
    }
  });
});
