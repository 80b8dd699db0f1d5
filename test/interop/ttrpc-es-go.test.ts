// ttrpc-es against the real Go implementation (containerd/ttrpc 1.2.4 and
// Debian 12's 1.1.1), in both directions, over unix sockets.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { StringValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, OversizedMessageError, TtrpcError, connect, createServer, type Client, type Server } from "ttrpc-es";
import { Interop, drain, echoPayloadForFrame, interopImpl } from "../common.js";
import { ensureGoPeer, runGoClient, startGoServer, type GoPeers, type GoServer } from "./go-peer.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";

let peers: GoPeers;
let dir: string;
beforeAll(async () => {
  peers = await ensureGoPeer();
  dir = mkdtempSync(join(tmpdir(), "ttrpc-es-interop-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * A deadline seen by the other process: what is left of `configuredMs` when
 * its handler started. Anything in (0, configured] is right; how much of it
 * the trip took is the machine's load, not the protocol's.
 */
function expectDeadlineSeen(seenMs: bigint | number, configuredMs: number): void {
  expect(Number(seenMs)).toBeGreaterThan(0);
  expect(Number(seenMs)).toBeLessThanOrEqual(configuredMs);
}

let socketCount = 0;
const socket = () => join(dir, `s${socketCount++}.sock`);

describe("ttrpc-es client → Go ttrpc 1.2.4 server", () => {
  let go: GoServer;
  let path: string;
  let client: Client;
  beforeAll(async () => {
    path = socket();
    go = await startGoServer(peers.peer, path);
    client = await connect(path, { maxMessageSize: 8 << 20 });
  });
  afterAll(async () => {
    client.close();
    await go.close();
  });

  it("unary: payload, text, and our metadata seen by Go (multi-valued)", async () => {
    const r = await client.unary(
      Interop.method.echo,
      { text: "from ts", payload: new Uint8Array([0, 1, 0xff]) },
      { metadata: { "x-interop": "ts", "x-multi": ["one", "two"] } },
    );
    expect(r.text).toBe("from ts");
    expect([...r.payload]).toEqual([0, 1, 0xff]);
    expect(r.metadata).toEqual(["x-interop=ts", "x-multi=one", "x-multi=two"]);
    expect(r.deadlineMs).toBe(0n);
  });

  it("empty messages both ways: zero-length request and response", async () => {
    expect(await client.unary(Interop.method.echoEmpty, {})).toMatchObject({ $typeName: "ttrpces.interop.v1.Empty" });
    const got = [];
    for await (const m of client.serverStream(Interop.method.serverStream, {})) got.push(m);
    expect(got).toEqual([]);
  });

  it("server, client and bidi streaming", async () => {
    const seqs: number[] = [];
    for await (const m of client.serverStream(Interop.method.serverStream, { count: 100, text: "s" })) seqs.push(m.seq);
    expect(seqs).toEqual([...Array(100).keys()]);
    const cs = await client.clientStream(Interop.method.clientStream, [
      { payload: new Uint8Array(1) },
      { payload: new Uint8Array(10) },
      {},
    ]);
    expect([cs.seq, cs.totalBytes]).toEqual([3, 11n]);
    const texts: string[] = [];
    for await (const m of client.bidiStream(
      Interop.method.bidi,
      ["a", "b", "c"].map((text) => ({ text })),
    ))
      texts.push(m.text);
    expect(texts).toEqual(["a", "b", "c"]);
  });

  it("a Go server ends a stream with an error after data", async () => {
    const { messages, error } = await drain(
      client.serverStream(Interop.method.serverStream, { count: 2, failCode: Code.DataLoss, failMessage: "late" }),
    );
    expect(messages.map((m) => m.seq)).toEqual([0, 1]);
    expect(error).toMatchObject({ code: Code.DataLoss, rawMessage: "late" });
  });

  it("metadata and timeout reach a Go server on streams too", async () => {
    const got = [];
    for await (const m of client.serverStream(
      Interop.method.serverStream,
      { count: 2 },
      { metadata: { k: "v" }, timeoutMs: 5000 },
    ))
      got.push(m);
    // Each message reports the metadata and the time left that Go's handler saw.
    expect(got.map((m) => [m.seq, m.metadata])).toEqual([
      [0, ["k=v"]],
      [1, ["k=v"]],
    ]);
    expectDeadlineSeen(got[0]!.deadlineMs, 5000);
    const cs = await client.clientStream(Interop.method.clientStream, [{}], { metadata: { k: "v" }, timeoutMs: 5000 });
    expect(cs.seq).toBe(1);
    expect(cs.metadata).toEqual(["k=v"]);
    expectDeadlineSeen(cs.deadlineMs, 5000);
  });

  it("deadlines: Go sees timeout_nano; a slow Go handler gives DEADLINE_EXCEEDED", async () => {
    const r = await client.unary(Interop.method.echo, {}, { timeoutMs: 5000 });
    expectDeadlineSeen(r.deadlineMs, 5000);
    await expect(client.unary(Interop.method.echo, { delayMs: 10_000 }, { timeoutMs: 100 })).rejects.toMatchObject({
      code: Code.DeadlineExceeded,
    });
  });

  it("every status code, and a status with details, cross from Go", async () => {
    for (let code = 1; code <= 16; code++) {
      const e = (await client
        .unary(Interop.method.echo, { failCode: code, failMessage: `go ${code}` })
        .catch((x: unknown) => x)) as TtrpcError;
      expect(e).toBeInstanceOf(TtrpcError);
      expect([e.code, e.rawMessage]).toEqual([code, `go ${code}`]);
    }
    const e = (await client
      .unary(Interop.method.echo, { failCode: Code.NotFound, failMessage: "detailed", failWithDetails: true })
      .catch((x: unknown) => x)) as TtrpcError;
    expect(e.details.map((d) => d.typeUrl)).toEqual(["type.googleapis.com/google.protobuf.StringValue"]);
    expect(e.findDetails(StringValueSchema).map((d) => d.value)).toEqual(["detailed"]);
  });

  it("unknown service and method: UNIMPLEMENTED", async () => {
    const fake = {
      ...Interop.method.echo,
      parent: { ...Interop, typeName: "ttrpces.interop.v1.Missing" },
    } as typeof Interop.method.echo;
    await expect(client.unary(fake, {})).rejects.toMatchObject({
      code: Code.Unimplemented,
      rawMessage: "service ttrpces.interop.v1.Missing",
    });
    const noMethod = { ...Interop.method.echo, name: "Missing" } as typeof Interop.method.echo;
    await expect(client.unary(noMethod, {})).rejects.toMatchObject({
      code: Code.Unimplemented,
      rawMessage: "method Missing",
    });
  });

  it("oversize: Go discards a 4 MiB + 1 frame and answers RESOURCE_EXHAUSTED; exactly 4 MiB passes; the connection lives", async () => {
    // This client allows 8 MiB, so it sends what Go must refuse.
    const n = echoPayloadForFrame(4 << 20);
    const exact = await client.unary(Interop.method.echo, { payload: new Uint8Array(n), replySize: 1 });
    expect(exact.payload.length).toBe(1);
    await expect(
      client.unary(Interop.method.echo, { payload: new Uint8Array(n + 1), replySize: 1 }),
    ).rejects.toMatchObject({
      code: Code.ResourceExhausted,
      rawMessage: "message length 4194305 exceed maximum message size of 4194304",
    });
    expect((await client.unary(Interop.method.echo, { text: "alive" })).text).toBe("alive");
  });

  it("oversize response from Go 1.2.4 (it still sends it) fails that call only, for a 4 MiB client", async () => {
    const small = await connect(path);
    await expect(small.unary(Interop.method.echo, { replySize: (4 << 20) + 1 })).rejects.toMatchObject({
      code: Code.ResourceExhausted,
    });
    expect((await small.unary(Interop.method.echo, { text: "alive" })).text).toBe("alive");
    await expect(small.unary(Interop.method.echo, { payload: new Uint8Array((4 << 20) + 1) })).rejects.toBeInstanceOf(
      OversizedMessageError,
    );
    small.close();
  });

  it("1,000 concurrent calls on one connection", async () => {
    const texts = Array.from({ length: 1000 }, (_, i) => `c${i}`);
    const res = await Promise.all(texts.map((text) => client.unary(Interop.method.echo, { text })));
    expect(res.map((r) => r.text)).toEqual(texts);
  });

  it("a Go server that dies mid-stream: the stream settles with UNAVAILABLE", async () => {
    const p = socket();
    const dying = await startGoServer(peers.peer, p);
    const c = await connect(p);
    const seqs: number[] = [];
    const err = await (async () => {
      for await (const m of c.serverStream(Interop.method.serverStream, { count: 100_000, delayMs: 1 })) {
        seqs.push(m.seq);
        if (m.seq === 2) void dying.close();
      }
    })().catch((e: unknown) => e);
    expect(seqs.length).toBeGreaterThanOrEqual(3);
    expect(err).toMatchObject({ code: Code.Unavailable });
    c.close();
  });
});

describe("Go ttrpc 1.2.4 client → ttrpc-es server", () => {
  let server: Server;
  let path: string;
  const go = (scenario: string, extra?: string[]) => runGoClient(peers.peer, path, scenario, extra);
  beforeAll(async () => {
    path = socket();
    server = createServer().register(Interop, interopImpl);
    await server.listen(path);
  });
  afterAll(() => server.close());

  it("unary with Go's metadata, and an empty message", async () => {
    const r = await go("unary");
    expect(r).toMatchObject({ ok: true, text: "hello from go", payload_len: 5, deadline_ms: 0 });
    expect(r.metadata).toEqual(["x-interop=go", "x-multi=one", "x-multi=two"]);
    expect(await go("unary-empty")).toEqual({ ok: true });
  });

  it("deadlines: our server sees Go's timeout; Go's own deadline ends a slow call", async () => {
    const seen = await go("deadline-seen");
    expect(seen.ok).toBe(true);
    expectDeadlineSeen(seen.deadline_ms, 5000);
    const d = await go("deadline");
    expect(d).toMatchObject({ ok: false, code: Code.DeadlineExceeded, after_ok: true });
    // Our server answers at the deadline itself, with Go's words.
    const s = await go("deadline-server");
    expect(s).toMatchObject({
      ok: false,
      kind: "status",
      code: Code.DeadlineExceeded,
      message: "context deadline exceeded",
    });
  });

  it("every status code and a status with details reach Go", async () => {
    for (let code = 1; code <= 16; code++) {
      const r = await go(`status-${code}`);
      expect(r, `code ${code}`).toMatchObject({ ok: false, kind: "status", code });
    }
    const r = await go("status-details");
    expect(r).toMatchObject({ ok: false, kind: "status", details: [expect.any(String)] });
    expect(r.detail_types).toEqual(["type.googleapis.com/google.protobuf.StringValue"]);
  });

  it("unknown service and method: UNIMPLEMENTED in Go's words", async () => {
    expect(await go("unknown-service")).toMatchObject({
      code: Code.Unimplemented,
      message: "service ttrpces.interop.v1.InteropMissing",
    });
    expect(await go("unknown-method")).toMatchObject({ code: Code.Unimplemented, message: "method Missing" });
  });

  it("server, client and bidi streams from a Go client, empty request included", async () => {
    expect(await go("server-stream")).toMatchObject({ ok: true, seqs: [0, 1, 2, 3, 4], eof: true });
    expect(await go("stream-empty")).toMatchObject({ ok: true, seqs: [], eof: true });
    expect(await go("server-stream-fail")).toMatchObject({ ok: false, code: Code.FailedPrecondition, seqs: [0, 1, 2] });
    expect(await go("client-stream")).toMatchObject({ ok: true, seq: 3, total_bytes: 111 });
    expect(await go("client-stream-fail")).toMatchObject({ ok: false, code: Code.FailedPrecondition });
    // Go sends bidi-0 … bidi-4 one at a time, each after the previous echo: each comes back in order.
    expect(await go("bidi")).toEqual({
      ok: true,
      eof: true,
      seqs: [0, 1, 2, 3, 4],
      texts: ["bidi-0", "bidi-1", "bidi-2", "bidi-3", "bidi-4"],
    });
  });

  it("oversize both ways: RESOURCE_EXHAUSTED, connection kept; exactly 4 MiB passes", async () => {
    expect(await go("oversize-request")).toMatchObject({ ok: false, code: Code.ResourceExhausted, after_ok: true });
    expect(await go("frame-4mib-plus-1")).toMatchObject({ ok: false, code: Code.ResourceExhausted });
    expect(await go("exact-4mib")).toMatchObject({ ok: true, frame_bytes: 4 << 20 });
    expect(await go("oversize-response")).toMatchObject({ ok: false, code: Code.ResourceExhausted, after_ok: true });
  });

  it("many concurrent calls on one connection", async () => {
    expect(await go("concurrent")).toMatchObject({ ok: true, succeeded: 200, matched: 200 });
  });

  it("a Go client that disconnects mid-stream: our server goes on serving", async () => {
    const r = await go("disconnect-mid-stream");
    expect(r).toMatchObject({ ok: true, received: 2, after_ok: true });
    // Go's Recv after its own Close fails: the stream did not go on.
    expect(r.after_close).toMatchObject({ ok: false });
    // The Go process has exited: both its connections, the dropped one with a
    // stream still sending, are gone from our server.
    await vi.waitFor(() => expect(server.connectionCount).toBe(0), { timeout: 10_000 });
    expect((await go("unary-no-metadata")).ok).toBe(true);
  });
});

describe("the old peer: Debian 12's Go ttrpc 1.1.1 (unary only)", () => {
  it("our client calls its unary methods; a streaming call gets a clear error", async () => {
    const p = socket();
    const old = await startGoServer(peers.oldPeer, p);
    const c = await connect(p);
    try {
      const r = await c.unary(Interop.method.echo, { text: "to 1.1" }, { metadata: { k: "v" } });
      expect(r.text).toBe("to 1.1");
      expect(await c.unary(Interop.method.echoEmpty, {})).toEqual({ $typeName: "ttrpces.interop.v1.Empty" });
      const err = await (async () => {
        for await (const _ of c.serverStream(Interop.method.serverStream, { count: 1 }));
      })().catch((e: unknown) => e);
      // 1.1 registers no streams: it treats the Request as unary and finds no such method.
      expect(err).toMatchObject({ code: Code.Unimplemented, rawMessage: "method ServerStream" });
    } finally {
      c.close();
      await old.close();
    }
  });

  it("its client calls our server", async () => {
    const p = socket();
    const server = createServer().register(Interop, interopImpl);
    await server.listen(p);
    try {
      expect(await runGoClient(peers.oldPeer, p, "unary")).toMatchObject({ ok: true, text: "hello from go" });
      expect(await runGoClient(peers.oldPeer, p, "unary-empty")).toEqual({ ok: true });
    } finally {
      await server.close();
    }
  });
});
