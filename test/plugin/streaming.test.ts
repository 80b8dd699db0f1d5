// The generated client and server of the streaming fixture
// (test/proto/ttrpces/streaming/v1/streaming.proto, the equivalent of
// containerd/ttrpc's integration/streaming/test.proto) talking over a real
// unix socket, every call shape.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { Code, TtrpcError, connect, createServer } from "ttrpc-es";
import type { EchoPayload } from "../../gen/ttrpces/streaming/v1/streaming_pb.js";
import {
  StreamingServiceName,
  createStreamingClient,
  registerStreamingServer,
  type StreamingClient,
  type StreamingServer,
} from "../../gen/ttrpces/streaming/v1/streaming_ttrpc.js";

const seen: string[] = [];

const impl: StreamingServer = {
  echo(request, context) {
    seen.push(`${context.service}/${context.method.name}`);
    return { seq: request.seq + 1, msg: request.msg };
  },
  async *echoStream(requests, context) {
    seen.push(`${context.service}/${context.method.name}`);
    for await (const r of requests) yield { seq: r.seq + 1, msg: r.msg };
  },
  async sumStream(requests) {
    let sum = 0;
    let num = 0;
    for await (const part of requests) {
      sum += part.add;
      num++;
    }
    return { sum, num };
  },
  async *divideStream(request) {
    // Go's test: num parts that add up to sum.
    const share = Math.floor(request.sum / request.num);
    for (let i = 0; i < request.num; i++) {
      yield { add: i === request.num - 1 ? request.sum - share * (request.num - 1) : share };
    }
  },
  async echoNull(requests) {
    for await (const r of requests) {
      if (r.msg !== "non-empty") throw new TtrpcError(`unexpected ${r.msg}`, Code.InvalidArgument);
    }
    return {};
  },
  async *echoNullStream(requests) {
    for await (const _ of requests) yield {};
  },
  async *emptyPayloadStream() {
    for (let seq = 0; seq < 10; seq++) yield { seq, msg: "ok" };
  },
  ping: () => ({}),
};

async function start(): Promise<StreamingClient> {
  const dir = mkdtempSync(join(tmpdir(), "ttrpc-es-streaming-"));
  const server = createServer();
  registerStreamingServer(server, impl);
  const address = await server.listen(join(dir, "streaming.sock"));
  expect(address).toBe(`unix:${join(dir, "streaming.sock")}`);
  const client = await connect(address);
  onTestFinished(async () => {
    client.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return createStreamingClient(client);
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

function payloads(n: number): EchoPayload[] {
  return Array.from({ length: n }, (_, i) => ({ $typeName: "ttrpces.streaming.v1.EchoPayload", seq: i, msg: `m${i}` }));
}

describe("generated Streaming client and server over a unix socket", () => {
  it("unary: echo", async () => {
    const c = await start();
    const res = await c.echo({ seq: 1, msg: "hello" });
    expect(res.$typeName).toBe("ttrpces.streaming.v1.EchoPayload");
    expect(res).toMatchObject({ seq: 2, msg: "hello" });
    expect(seen).toContain(`${StreamingServiceName}/Echo`);
    expect(StreamingServiceName).toBe("ttrpces.streaming.v1.Streaming");
  });

  it("bidi: echoStream answers each message in order", async () => {
    const c = await start();
    async function* requests() {
      yield* payloads(5);
    }
    const got = await collect(c.echoStream(requests()));
    expect(got.map((p) => [p.seq, p.msg])).toEqual([
      [1, "m0"],
      [2, "m1"],
      [3, "m2"],
      [4, "m3"],
      [5, "m4"],
    ]);
    expect(seen).toContain("ttrpces.streaming.v1.Streaming/EchoStream");
  });

  it("client stream: sumStream adds the parts", async () => {
    const c = await start();
    const res = await c.sumStream([{ add: 1 }, { add: 2 }, { add: 39 }]);
    expect(res).toMatchObject({ sum: 42, num: 3 });
  });

  it("server stream: divideStream yields the parts", async () => {
    const c = await start();
    const parts = await collect(c.divideStream({ sum: 100, num: 3 }));
    expect(parts.map((p) => p.add)).toEqual([33, 33, 34]);
  });

  it("client stream to Empty, bidi of Empty, server stream from Empty, unary Empty", async () => {
    const c = await start();
    const empty = await c.echoNull([{ msg: "non-empty" }, { msg: "non-empty" }]);
    expect(empty.$typeName).toBe("google.protobuf.Empty");
    await expect(c.echoNull([{ msg: "" }])).rejects.toMatchObject({ code: Code.InvalidArgument });
    expect(await collect(c.echoNullStream(payloads(3)))).toHaveLength(3);
    const streamed = await collect(c.emptyPayloadStream({}));
    expect(streamed.map((p) => p.seq)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect((await c.ping({})).$typeName).toBe("google.protobuf.Empty");
  });

  it("a method the implementation leaves out answers UNIMPLEMENTED", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ttrpc-es-streaming-"));
    const server = createServer();
    registerStreamingServer(server, { echo: impl.echo });
    const client = await connect(await server.listen(join(dir, "s.sock")));
    onTestFinished(async () => {
      client.close();
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const c = createStreamingClient(client);
    expect(await c.echo({ seq: 9 })).toMatchObject({ seq: 10 });
    await expect(c.ping({})).rejects.toMatchObject({ code: Code.Unimplemented });
  });
});
