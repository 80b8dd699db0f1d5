// ttrpc-es against Go ttrpc 1.2.7 (Debian sid), both ways, beside 1.2.4 and 1.1.1
// (ttrpc-es-go.test.ts); and the RemoteOpen|NoData open of client and bidi streams
// (docs/protocol.md §4) taken by every Go version here. The 1.2.7 peer is
// test/interop/go/peer built on sid's ttrpc by test/interop/go/ttrpc-1.2.7/setup.sh.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, OversizedMessageError, connect, createServer, type Client, type Server } from "ttrpc-es";
import { Interop, drain, echoPayloadForFrame, interopImpl } from "../common.js";
import { ensureGoPeer, runGoClient, runSetupScript, startGoServer, type GoServer } from "./go-peer.js";

const setupDir = fileURLToPath(new URL("./go/ttrpc-1.2.7/", import.meta.url));
const peers = { "1.2.4": "", "1.2.7": `${setupDir}.build/bin/ttrpc-peer-1.2.7`, "1.1.1": "" };

let dir: string;
beforeAll(async () => {
  await runSetupScript(`${setupDir}setup.sh`);
  const go = await ensureGoPeer();
  peers["1.2.4"] = go.peer;
  peers["1.1.1"] = go.oldPeer;
  dir = mkdtempSync(join(tmpdir(), "ttrpc-es-go127-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let socketCount = 0;
const socket = () => join(dir, `g${socketCount++}.sock`);

describe("ttrpc-es client → Go ttrpc 1.2.7 server", () => {
  let go: GoServer;
  let path: string;
  let client: Client;
  beforeAll(async () => {
    path = socket();
    go = await startGoServer(peers["1.2.7"], path);
    client = await connect(path, { maxMessageSize: 8 << 20 });
  });
  afterAll(async () => {
    client.close();
    await go.close();
  });

  it("unary: payload, text, multi-valued metadata and the deadline Go saw", async () => {
    const r = await client.unary(
      Interop.method.echo,
      { text: "to 1.2.7", payload: new Uint8Array([7]) },
      { metadata: { "x-interop": "ts", "x-multi": ["one", "two"] }, timeoutMs: 5000 },
    );
    expect([r.text, [...r.payload], r.metadata]).toEqual([
      "to 1.2.7",
      [7],
      ["x-interop=ts", "x-multi=one", "x-multi=two"],
    ]);
    expect(r.deadlineMs).toBeGreaterThan(4000n);
    expect(r.deadlineMs).toBeLessThanOrEqual(5000n);
  });

  it("statuses with details; a stream that ends with an error after data", async () => {
    await expect(
      client.unary(Interop.method.echo, { failCode: Code.NotFound, failMessage: "nf", failWithDetails: true }),
    ).rejects.toMatchObject({ code: Code.NotFound, rawMessage: "nf", details: [expect.anything()] });
    const { messages, error } = await drain(
      client.serverStream(Interop.method.serverStream, { count: 2, failCode: Code.DataLoss, failMessage: "late" }),
    );
    expect([messages.map((m) => m.seq), error]).toMatchObject([[0, 1], { code: Code.DataLoss, rawMessage: "late" }]);
  });

  it("deadline: a late call ends DEADLINE_EXCEEDED", async () => {
    await expect(client.unary(Interop.method.echo, { delayMs: 10_000 }, { timeoutMs: 200 })).rejects.toMatchObject({
      code: Code.DeadlineExceeded,
    });
  });

  it("sizes: exactly 4 MiB passes; 4 MiB + 1 is refused here first, or RESOURCE_EXHAUSTED there", async () => {
    const n = echoPayloadForFrame(4 << 20);
    expect(
      (await client.unary(Interop.method.echo, { payload: new Uint8Array(n), replySize: 1 })).payload,
    ).toHaveLength(1);
    await expect(
      client.unary(Interop.method.echo, { payload: new Uint8Array(n + 1), replySize: 1 }),
    ).rejects.toMatchObject({ code: Code.ResourceExhausted });
    const four = await connect(path);
    try {
      await expect(
        four.unary(Interop.method.echo, { payload: new Uint8Array(n + 1), replySize: 1 }),
      ).rejects.toBeInstanceOf(OversizedMessageError);
      expect((await four.unary(Interop.method.echo, { text: "alive" })).text).toBe("alive");
    } finally {
      four.close();
    }
  });

  it("200 calls in flight, each answered with its own text", async () => {
    const texts = Array.from({ length: 200 }, (_, i) => `c${i}`);
    expect(
      await Promise.all(texts.map((text) => client.unary(Interop.method.echo, { text }).then((r) => r.text))),
    ).toEqual(texts);
  });
});

describe("Go ttrpc 1.2.7 client → ttrpc-es server", () => {
  let server: Server;
  let path: string;
  const go = (scenario: string) => runGoClient(peers["1.2.7"], path, scenario);
  beforeAll(async () => {
    path = socket();
    server = createServer().register(Interop, interopImpl);
    await server.listen(path);
  });
  afterAll(() => server.close());

  it("unary, metadata, deadlines and statuses", async () => {
    const r = await go("unary");
    expect(r).toMatchObject({ ok: true, text: "hello from go", payload_len: 5 });
    expect(r.metadata).toEqual(["x-interop=go", "x-multi=one", "x-multi=two"]);
    expect((await go("deadline-seen")).deadline_ms).toBeGreaterThan(4000);
    expect(await go("deadline")).toMatchObject({ ok: false, code: Code.DeadlineExceeded, after_ok: true });
    for (const code of [1, 5, 9, 14, 16]) expect(await go(`status-${code}`)).toMatchObject({ ok: false, code });
    expect((await go("status-details")).detail_types).toEqual(["type.googleapis.com/google.protobuf.StringValue"]);
  });

  it("server, client and bidi streams", async () => {
    expect(await go("server-stream")).toMatchObject({ ok: true, seqs: [0, 1, 2, 3, 4], eof: true });
    expect(await go("client-stream")).toMatchObject({ ok: true, seq: 3, total_bytes: 111 });
    expect(await go("client-stream-fail")).toMatchObject({ ok: false, code: Code.FailedPrecondition });
    expect(await go("bidi")).toMatchObject({ ok: true, seqs: [0, 1, 2, 3, 4] });
  });

  it("sizes and concurrency: exactly 4 MiB passes, more is RESOURCE_EXHAUSTED; 200 calls in flight", async () => {
    expect(await go("exact-4mib")).toMatchObject({ ok: true, frame_bytes: 4 << 20 });
    expect(await go("frame-4mib-plus-1")).toMatchObject({ ok: false, code: Code.ResourceExhausted });
    expect(await go("oversize-response")).toMatchObject({ ok: false, code: Code.ResourceExhausted, after_ok: true });
    expect(await go("concurrent")).toMatchObject({ ok: true, succeeded: 200, matched: 200 });
  });

  it("a client that disconnects mid-stream leaves our server serving", async () => {
    expect(await go("disconnect-mid-stream")).toMatchObject({ ok: true, after_ok: true });
  });
});

describe("client and bidi streams open with RemoteOpen|NoData: every Go server takes it", () => {
  it.each(["1.2.4", "1.2.7"] as const)("Go ttrpc %s: the handler gets exactly the messages sent", async (version) => {
    const path = socket();
    const go = await startGoServer(peers[version], path);
    const c = await connect(path);
    try {
      const cs = await c.clientStream(Interop.method.clientStream, [
        { payload: new Uint8Array(2) },
        { payload: new Uint8Array(3) },
      ]);
      expect([cs.seq, cs.totalBytes]).toEqual([2, 5n]);
      expect(await c.clientStream(Interop.method.clientStream, [])).toMatchObject({ seq: 0 });
      const seqs: number[] = [];
      for await (const m of c.bidiStream(Interop.method.bidi, [{ text: "x" }, { text: "y" }])) seqs.push(m.seq);
      expect(seqs).toEqual([0, 1]);
    } finally {
      c.close();
      await go.close();
    }
  });

  it("Go ttrpc 1.1.1 (no streams) serves the Request as unary, ignores the Data after it, and stays up", async () => {
    const path = socket();
    const go = await startGoServer(peers["1.1.1"], path);
    const c = await connect(path);
    try {
      // Echo called as a client stream: the Request (flags 0x06, empty payload) then two Data frames.
      const echoAsStream = {
        ...Interop.method.echo,
        methodKind: "client_streaming",
      } as unknown as typeof Interop.method.clientStream;
      const r = await c.clientStream(echoAsStream, [{ text: "ignored" }, { text: "ignored too" }]);
      expect(r).toMatchObject({ text: "", seq: 0 });
      expect((await c.unary(Interop.method.echo, { text: "after" })).text).toBe("after");
    } finally {
      c.close();
      await go.close();
    }
  });
});
