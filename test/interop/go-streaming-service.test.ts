// containerd/ttrpc's own cross-implementation test service, unchanged:
// ttrpc.integration.streaming.Streaming from integration/streaming/test.proto, the suite
// other implementations prove themselves against. The proto comes from Debian's ttrpc
// 1.2.7 source package (test/interop/go/streaming/setup.sh compiles it to a descriptor
// set, which is loaded here at run time), and a Go server and client on ttrpc 1.2.7 are
// built around its generated Go code. Every method, both ways.
import { readFileSync } from "node:fs";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createFileRegistry, fromBinary, type DescMethod, type DescService } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { Code, TtrpcError, connect, createServer, type Client, type Server, type ServiceImpl } from "ttrpc-es";
import { runGoClient, runSetupScript, startGoServer, type GoServer } from "./go-peer.js";

const here = fileURLToPath(new URL("./go/streaming/", import.meta.url));
const peer = `${here}.build/bin/streaming-peer`;

// The messages of test.proto, as read from the dynamic descriptors.
interface EchoPayload {
  seq: number;
  msg: string;
}
interface Part {
  add: number;
}
interface Sum {
  sum: number;
  num: number;
}

let Streaming: DescService;
let dir: string;
beforeAll(async () => {
  await runSetupScript(`${here}setup.sh`);
  const set = fromBinary(FileDescriptorSetSchema, readFileSync(`${here}.build/test.binpb`));
  const found = createFileRegistry(set).getService("ttrpc.integration.streaming.Streaming");
  if (found === undefined) throw new Error("test.proto has no ttrpc.integration.streaming.Streaming");
  Streaming = found;
  dir = mkdtempSync(join(tmpdir(), "ttrpc-es-streaming-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let socketCount = 0;
const socket = () => join(dir, `st${socketCount++}.sock`);
/** The method `name` of the loaded service, checked to be of `kind`. */
function m<K extends DescMethod["methodKind"]>(name: string, kind: K): Extract<DescMethod, { methodKind: K }> {
  const method = Streaming.methods.find((x) => x.name === name);
  if (method?.methodKind !== kind) throw new Error(`no ${kind} method ${name} in test.proto`);
  return method as Extract<DescMethod, { methodKind: K }>;
}
const nullMsg = "non-empty empty";

// `any` below: the messages are dynamic (no generated TypeScript for a proto fetched at setup).
type Any = any;

/** Our server side of the service, with the behaviour upstream's Go test service has. */
// A record of handlers by local name: a dynamic DescService gives ServiceImpl no keys to check.
const impl: Record<string, (...args: Any[]) => unknown> = {
  echo: (req: Any) => ({ seq: req.seq + 1, msg: req.msg }),
  async *echoStream(reqs: AsyncIterable<Any>) {
    for await (const e of reqs) yield { seq: e.seq + 1, msg: e.msg };
  },
  async sumStream(reqs: AsyncIterable<Any>) {
    const sum: Sum = { sum: 0, num: 0 };
    for await (const p of reqs) {
      sum.sum += p.add;
      sum.num++;
    }
    return sum;
  },
  async *divideStream(req: Any) {
    // num parts adding up to sum: zero first and last, as upstream's.
    const parts: number[] = Array.from({ length: req.num }, (_, i) => (i > 0 && i < req.num - 2 ? (i % 7) - 3 : 0));
    parts[Math.max(0, req.num - 2)] = req.sum - parts.reduce((a, b) => a + b, 0);
    for (const add of parts) yield { add };
  },
  async echoNull(reqs: AsyncIterable<Any>) {
    let seq = 0;
    for await (const e of reqs) checkNull(e, seq++);
    return {};
  },
  async *echoNullStream(reqs: AsyncIterable<Any>) {
    let seq = 0;
    for await (const e of reqs) {
      checkNull(e, seq++);
      for (let i = 0; i < 10; i++) yield {};
    }
  },
  async *emptyPayloadStream() {
    yield { seq: 1 };
    yield { seq: 2 };
  },
};

function checkNull(e: EchoPayload, seq: number): void {
  if (e.seq !== seq || e.msg !== nullMsg)
    throw new TtrpcError(`unexpected message ${e.seq} ${JSON.stringify(e.msg)}`, Code.InvalidArgument);
}

describe("ttrpc-es client → Go ttrpc 1.2.7 server of the Streaming service", () => {
  let go: GoServer;
  let client: Client;
  beforeAll(async () => {
    const path = socket();
    go = await startGoServer(peer, path);
    client = await connect(path);
  });
  afterAll(async () => {
    client.close();
    await go.close();
  });

  it("Echo", async () => {
    expect(await client.unary(m("Echo", "unary"), { seq: 1, msg: "Echo Me" } as Any)).toMatchObject({
      seq: 2,
      msg: "Echo Me",
    });
  });

  it("EchoStream: 50 messages, each answered in turn, then the end", async () => {
    const got: EchoPayload[] = [];
    const sent = Array.from({ length: 50 }, (_, i) => ({ seq: 2 * i, msg: `${2 * i}: Echo in a stream` }));
    for await (const e of client.bidiStream(m("EchoStream", "bidi_streaming"), sent as Any[])) got.push(e as Any);
    expect(got.map((e) => [e.seq, e.msg])).toEqual(sent.map((e) => [e.seq + 1, e.msg]));
  });

  it("SumStream: 0, -99..100, 0", async () => {
    const parts: Part[] = [{ add: 0 }, ...Array.from({ length: 200 }, (_, i) => ({ add: i - 99 })), { add: 0 }];
    expect(await client.clientStream(m("SumStream", "client_streaming"), parts as Any[])).toMatchObject({
      sum: 100,
      num: 202,
    });
  });

  it("DivideStream: the parts of {392, 30}", async () => {
    const parts: number[] = [];
    for await (const p of client.serverStream(m("DivideStream", "server_streaming"), { sum: 392, num: 30 } as Any))
      parts.push((p as Any).add);
    expect([parts.length, parts.reduce((a, b) => a + b, 0), parts[0], parts[29]]).toEqual([30, 392, 0, 0]);
  });

  it("EchoNull: 100 messages Go checks one by one, then an Empty", async () => {
    const sent = Array.from({ length: 100 }, (_, seq) => ({ seq, msg: nullMsg }));
    const r = await client.clientStream(m("EchoNull", "client_streaming"), sent as Any[]);
    expect(r.$typeName).toBe("google.protobuf.Empty");
    // A wrong sequence fails it with Go's error.
    await expect(
      client.clientStream(m("EchoNull", "client_streaming"), [{ seq: 1, msg: nullMsg }] as Any[]),
    ).rejects.toMatchObject({
      rawMessage: "unexpected sequence 1, expected 0",
    });
  });

  it("EchoNullStream: ten empty messages per message, sent by ten goroutines at once", async () => {
    const sent = Array.from({ length: 100 }, (_, seq) => ({ seq, msg: nullMsg }));
    let n = 0;
    for await (const e of client.bidiStream(m("EchoNullStream", "bidi_streaming"), sent as Any[])) {
      expect((e as Any).$typeName).toBe("google.protobuf.Empty");
      n++;
    }
    expect(n).toBe(1000);
  });

  it("EmptyPayloadStream: an empty request, two messages, the end", async () => {
    const seqs: number[] = [];
    for await (const e of client.serverStream(m("EmptyPayloadStream", "server_streaming"), {} as Any))
      seqs.push((e as Any).seq);
    expect(seqs).toEqual([1, 2]);
  });
});

describe("Go ttrpc 1.2.7 client of the Streaming service → ttrpc-es server", () => {
  let server: Server;
  let path: string;
  beforeAll(async () => {
    path = socket();
    server = createServer().register(Streaming, impl as unknown as Partial<ServiceImpl<DescService>>);
    await server.listen(path);
  });
  afterAll(() => server.close());

  it("every method, with the inputs and checks of upstream's integration test", async () => {
    expect(await runGoClient(peer, path, "all")).toEqual({
      Echo: { ok: true, seq: 2, msg: "Echo Me" },
      EchoStream: { ok: true, eof: true, seqs: Array.from({ length: 50 }, (_, i) => 2 * i + 1) },
      SumStream: { ok: true, sum: 100, num: 202 },
      DivideStream: { ok: true, sum: 392, num: 30 },
      EchoNull: { ok: true },
      EchoNullStream: { ok: true, received: 1000 },
      EmptyPayloadStream: { ok: true, seqs: [1, 2] },
    });
  });
});
