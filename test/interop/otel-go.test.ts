// Tracing interop with the real Go ttrpc 1.2.4 peer. The Go client sends W3C
// trace context in its Request metadata where containerd's otelttrpc client
// interceptor puts it (the lower-case propagator keys next to the caller's
// own); a ttrpc-es server span must continue that trace. A stand-in for
// otelttrpc itself: it is not in Debian's archive (only the OpenTelemetry Go
// SDK is), so the peer writes the three headers itself, with the W3C
// specification's example values, and reports what it sent; the test checks
// our server read exactly those, not that otelttrpc would write them so. The other
// way, a ttrpc-es client's traceparent must reach the Go server unchanged
// (the peer's Echo returns the metadata it received).
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { ROOT_CONTEXT, SpanKind, context, propagation } from "@opentelemetry/api";
import { connect, createServer } from "ttrpc-es";
import { INSTRUMENTATION_NAME, otelClientInterceptor, otelServerInterceptor } from "ttrpc-es/otel";
import { Interop, interopImpl } from "../common.js";
import { installGlobalSdk } from "../otel/otel-sdk.js";
import { ensureGoPeer, runGoClient, startGoServer, type GoPeers } from "./go-peer.js";

const sdk = installGlobalSdk();
let peers: GoPeers;
let dir: string;
beforeAll(async () => {
  peers = await ensureGoPeer();
  dir = mkdtempSync(join(tmpdir(), "ttrpc-es-otel-interop-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("tracing with Go ttrpc", () => {
  it("a Go client's traceparent: the ttrpc-es server span continues the Go trace", async () => {
    const path = join(dir, "ts-server.sock");
    const server = createServer({ interceptors: [otelServerInterceptor()] }).register(Interop, interopImpl);
    await server.listen(path);
    sdk.exporter.reset();
    let r: Awaited<ReturnType<typeof runGoClient>>;
    try {
      r = await runGoClient(peers.peer, path, "unary-traceparent");
    } finally {
      await server.close();
    }
    expect(r.ok).toBe(true);
    // The handler saw the Go client's keys as sent, next to its own.
    expect(r.metadata).toEqual([
      `baggage=${r.baggage}`,
      `traceparent=${r.traceparent}`,
      `tracestate=${r.tracestate}`,
      "x-interop=go",
    ]);
    const [, traceId, parentId] = (r.traceparent as string).split("-");
    const spans = sdk.exporter.getFinishedSpans();
    expect(spans).toHaveLength(1);
    const span = spans[0]!;
    expect(span.kind).toBe(SpanKind.SERVER);
    expect(span.name).toBe("ttrpces.interop.v1.Interop/Echo");
    expect(span.instrumentationScope.name).toBe(INSTRUMENTATION_NAME);
    expect(span.spanContext().traceId).toBe(traceId);
    expect(span.parentSpanContext?.spanId).toBe(parentId);
    expect(span.parentSpanContext?.isRemote).toBe(true);
    expect(span.spanContext().traceState?.serialize()).toBe(r.tracestate);
    expect(span.attributes["rpc.ttrpc.status_code"]).toBe(0);
  });

  it("a ttrpc-es client's traceparent, tracestate and baggage reach the Go server unchanged", async () => {
    const path = join(dir, "go-server.sock");
    const go = await startGoServer(peers.peer, path);
    const client = await connect(path, { interceptors: [otelClientInterceptor()] });
    try {
      sdk.exporter.reset();
      // A remote parent with a tracestate, as a server span continuing a trace would have.
      const parent = propagation.extract(ROOT_CONTEXT, {
        traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        tracestate: "rojo=00f067aa0ba902b7",
        baggage: "tenant=k8s.io",
      });
      const r = await context.with(parent, () =>
        client.unary(Interop.method.echo, { text: "ts" }, { metadata: { "x-interop": "ts" } }),
      );
      const [span] = sdk.exporter.getFinishedSpans();
      const { traceId, spanId } = span!.spanContext();
      expect(traceId).toBe("0af7651916cd43dd8448eb211c80319c");
      expect(r.metadata).toEqual([
        "baggage=tenant=k8s.io",
        `traceparent=00-${traceId}-${spanId}-01`,
        "tracestate=rojo=00f067aa0ba902b7",
        "x-interop=ts",
      ]);
    } finally {
      client.close();
      await go.close();
    }
  });
});
