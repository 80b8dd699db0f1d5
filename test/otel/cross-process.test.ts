// Parent and child spans across two processes: a traced client here, a traced
// ttrpc-es server in a child process with its own SDK (test/otel/child-server.ts,
// compiled for the run). The only thing the two share is the socket.
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { join } from "node:path";
import { ROOT_CONTEXT, SpanKind, context, trace } from "@opentelemetry/api";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { connect } from "ttrpc-es";
import { INSTRUMENTATION_NAME, otelClientInterceptor } from "ttrpc-es/otel";
import { compileForTest } from "../cli/harness.js";
import { Interop, drain, tempDir } from "../common.js";
import { installGlobalSdk } from "./otel-sdk.js";

const sdk = installGlobalSdk();
let build: { out: string; cleanup: () => void } | undefined;
beforeAll(() => {
  build = compileForTest(["test/otel/child-server.ts"], ["test/otel/child-server.js"]);
}, 120_000);
afterAll(() => build?.cleanup());

interface ChildSpan {
  name: string;
  kind: number;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  parentIsRemote?: boolean;
  scope: string;
  attributes: Record<string, unknown>;
  events: Record<string, unknown>[];
}

/** Starts the child server; resolves once it listens. */
async function startChild(socket: string) {
  const child: ChildProcessWithoutNullStreams = spawn(
    process.execPath,
    [join(build!.out, "test/otel/child-server.js"), socket],
    { stdio: "pipe" },
  );
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  onTestFinished(async () => {
    child.stdin.end();
    await exited;
  });
  const lines: string[] = [];
  const waiters: (() => void)[] = [];
  let buf = "";
  child.stdout.setEncoding("utf8").on("data", (c: string) => {
    buf += c;
    for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
    for (const w of waiters.splice(0)) w();
  });
  const nextLine = () =>
    new Promise<string>((resolve, reject) => {
      const check = () => {
        const line = lines.shift();
        if (line !== undefined) return resolve(line);
        if (child.exitCode !== null) return reject(new Error(`child exited: ${stderr}`));
        waiters.push(check);
      };
      check();
    });
  child.once("exit", () => {
    for (const w of waiters.splice(0)) w();
  });
  expect(await nextLine()).toBe("READY");
  return {
    async spans(): Promise<ChildSpan[]> {
      child.stdin.write("spans\n");
      return JSON.parse(await nextLine());
    },
  };
}

describe("tracing across processes", () => {
  it("the server span in the other process is the child of this process's client span", async () => {
    const socket = join(tempDir(), "traced.sock");
    const child = await startChild(socket);
    const client = await connect(socket, { interceptors: [otelClientInterceptor()] });
    onTestFinished(() => client.close());

    const parent = trace.getTracer("test").startSpan("parent");
    const ctx = trace.setSpan(ROOT_CONTEXT, parent);
    const res = await context.with(ctx, () => client.unary(Interop.method.echo, {}));
    const stream = await context.with(ctx, () => drain(client.serverStream(Interop.method.serverStream, { count: 2 })));
    parent.end();

    const clients = sdk.exporter.getFinishedSpans().filter((s) => s.kind === SpanKind.CLIENT);
    expect(clients.map((s) => s.name)).toEqual([
      "ttrpces.interop.v1.Interop/Echo",
      "ttrpces.interop.v1.Interop/ServerStream",
    ]);
    const servers = await child.spans();
    expect(servers.map((s) => [s.name, s.kind, s.scope])).toEqual([
      ["ttrpces.interop.v1.Interop/Echo", SpanKind.SERVER, INSTRUMENTATION_NAME],
      ["ttrpces.interop.v1.Interop/ServerStream", SpanKind.SERVER, INSTRUMENTATION_NAME],
    ]);
    for (const [i, server] of servers.entries()) {
      expect(clients[i]!.parentSpanContext?.spanId).toBe(parent.spanContext().spanId);
      expect(server.traceId).toBe(parent.spanContext().traceId);
      expect(server.parentSpanId).toBe(clients[i]!.spanContext().spanId);
      expect(server.parentIsRemote).toBe(true);
      expect(server.attributes["rpc.ttrpc.status_code"]).toBe(0);
    }
    // The handler ran in its span, in the other process, for both shapes.
    expect(res.text).toBe(servers[0]!.spanId);
    expect(stream.messages.map((m) => m.text)).toEqual([servers[1]!.spanId, servers[1]!.spanId]);
    expect(servers[1]!.events).toEqual([
      { "message.type": "RECEIVED", "message.id": 1 },
      { "message.type": "SENT", "message.id": 1 },
      { "message.type": "SENT", "message.id": 2 },
    ]);
  });
});
