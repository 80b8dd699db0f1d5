// Byte-level behaviour of the server, driven by a raw frame peer.
import { join } from "node:path";
import { Server as NetServer } from "node:net";
import { describe, expect, it } from "vitest";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, connect, createServer, encodeFrame, type Frame } from "ttrpc-es";
import { RequestSchema, ResponseSchema } from "../../gen/ttrpc/request_pb.js";
import { EchoRequestSchema, EchoResponseSchema } from "../../gen/ttrpces/interop/v1/interop_pb.js";
import { Interop, RawPeer, interopImpl, tempDir } from "../common.js";

async function rawServer() {
  const dir = tempDir();
  const server = createServer().register(Interop, interopImpl);
  const path = join(dir, "s.sock");
  await server.listen(path);
  const peer = await RawPeer.connect(path);
  return { server, peer, path };
}

const status = (f: Frame) => fromBinary(ResponseSchema, f.payload).status;
const echo = (text: string) => toBinary(EchoRequestSchema, create(EchoRequestSchema, { text }));

describe("server protocol rules", () => {
  it("answers a unary Request with one Response carrying the status 0a 00 and the payload", async () => {
    const { peer, server } = await rawServer();
    peer.request(1, "Echo", echo("x"));
    const [f] = await peer.waitFrames(1);
    expect(f).toMatchObject({ streamId: 1, type: 2, flags: 0 });
    expect([...f!.payload.subarray(0, 2)]).toEqual([0x0a, 0x00]);
    expect(fromBinary(EchoResponseSchema, fromBinary(ResponseSchema, f!.payload).payload).text).toBe("x");
    await server.close();
  });

  it("ends a successful server stream with Data[remote closed|no data] and an empty payload", async () => {
    const { peer, server } = await rawServer();
    peer.request(1, "ServerStream", toBinary(EchoRequestSchema, create(EchoRequestSchema, { count: 2 })), 0x01);
    const frames = await peer.waitFrames(3);
    expect(frames.map((f) => [f.type, f.flags, f.payload.length > 0])).toEqual([
      [3, 0, false], // seq 0 encodes to zero bytes: an empty message, still a message
      [3, 0, true],
      [3, 0x05, false],
    ]);
    await server.close();
  });

  it("delivers a zero-length Request payload to a server-streaming handler", async () => {
    const { peer, server } = await rawServer();
    peer.request(1, "ServerStream", new Uint8Array(0), 0x01);
    const [f] = await peer.waitFrames(1);
    expect([f!.type, f!.flags]).toEqual([3, 0x05]);
    await server.close();
  });

  it("dispatches by the registered method kind, not the Request flags, and accepts both client terminators", async () => {
    const { peer, server } = await rawServer();
    // Client stream opened with Rust's flags (remote open | no data), ended with 0x05.
    peer.request(1, "ClientStream", new Uint8Array(0), 0x06);
    peer.write(
      encodeFrame(1, 3, 0, toBinary(EchoRequestSchema, create(EchoRequestSchema, { payload: new Uint8Array(5) }))),
    );
    peer.write(encodeFrame(1, 3, 0x05));
    // Unary method called with stream flags: still unary.
    peer.request(3, "Echo", echo("u"), 0x02);
    const frames = await peer.waitFrames(2);
    const byId = new Map(frames.map((f) => [f.streamId, f]));
    expect(fromBinary(EchoResponseSchema, fromBinary(ResponseSchema, byId.get(1)!.payload).payload).totalBytes).toBe(
      5n,
    );
    expect(fromBinary(EchoResponseSchema, fromBinary(ResponseSchema, byId.get(3)!.payload).payload).text).toBe("u");
    await server.close();
  });

  it("rejects even, reused and decreasing stream IDs with INVALID_ARGUMENT on that ID, and goes on serving", async () => {
    const { peer, server } = await rawServer();
    peer.request(2, "Echo", echo("even"));
    peer.request(5, "Echo", echo("five"));
    peer.request(5, "Echo", echo("again"));
    peer.request(3, "Echo", echo("lower"));
    peer.request(7, "Echo", echo("seven"));
    const frames = await peer.waitFrames(5);
    const got = frames
      .map((f) => [f.streamId, status(f)?.code ?? 0, status(f)?.message ?? ""])
      .sort((a, b) => Number(a[0]) - Number(b[0]));
    expect(got).toEqual(
      expect.arrayContaining([
        [2, Code.InvalidArgument, "StreamID must be odd for client initiated streams"],
        [3, Code.InvalidArgument, "StreamID cannot be re-used and must increment"],
        [5, Code.InvalidArgument, "StreamID cannot be re-used and must increment"],
        [5, 0, ""],
        [7, 0, ""],
      ]),
    );
    await server.close();
  });

  it("answers Data for an unknown or finished stream with INVALID_ARGUMENT, and Data on a unary stream fails only that call", async () => {
    const { peer, server } = await rawServer();
    peer.write(encodeFrame(9, 3, 0, new Uint8Array([1])));
    const [f] = await peer.waitFrames(1);
    expect([f!.streamId, status(f!)?.code, status(f!)?.message]).toEqual([
      9,
      Code.InvalidArgument,
      "StreamID is no longer active",
    ]);
    peer.request(11, "Echo", toBinary(EchoRequestSchema, create(EchoRequestSchema, { delayMs: 60_000 })));
    peer.write(encodeFrame(11, 3, 0, new Uint8Array([1])));
    const [, g] = await peer.waitFrames(2);
    expect([g!.streamId, status(g!)?.code]).toEqual([11, Code.InvalidArgument]);
    peer.request(13, "Echo", echo("ok"));
    const [, , h] = await peer.waitFrames(3);
    expect([h!.streamId, status(h!)?.code ?? 0]).toEqual([13, 0]);
    await server.close();
  });

  it("a close frame with a payload is INVALID_ARGUMENT (Go's words); Data after close too", async () => {
    const { peer, server } = await rawServer();
    peer.request(1, "ClientStream", new Uint8Array(0), 0x02);
    peer.write(encodeFrame(1, 3, 0x05, new Uint8Array([1, 2])));
    const [f] = await peer.waitFrames(1);
    expect([status(f!)?.code, status(f!)?.message]).toEqual([
      Code.InvalidArgument,
      "data close message cannot include data",
    ]);
    peer.request(3, "Bidi", new Uint8Array(0), 0x02);
    peer.write(encodeFrame(3, 3, 0x05));
    const [, end] = await peer.waitFrames(2);
    expect([end!.streamId, end!.type, end!.flags]).toEqual([3, 3, 0x05]);
    peer.write(encodeFrame(3, 3, 0, new Uint8Array(0)));
    const [, , late] = await peer.waitFrames(3);
    expect([late!.streamId, status(late!)?.code, status(late!)?.message]).toEqual([
      3,
      Code.InvalidArgument,
      "StreamID is no longer active",
    ]);
    await server.close();
  });

  it("ignores unknown frame types and Response frames from a client", async () => {
    const { peer, server } = await rawServer();
    peer.write(encodeFrame(1, 0x07, 0xff, new Uint8Array([1, 2, 3])));
    peer.write(encodeFrame(1, 0x02, 0, new Uint8Array([0x0a, 0x00])));
    peer.request(1, "Echo", echo("after"));
    const [f] = await peer.waitFrames(1);
    expect([f!.streamId, f!.type, status(f!)?.code ?? 0]).toEqual([1, 2, 0]);
    await server.close();
  });

  it("a Request that does not decode is INVALID_ARGUMENT; a payload that does not decode is INTERNAL (as Go)", async () => {
    const { peer, server } = await rawServer();
    peer.write(encodeFrame(1, 1, 0, new Uint8Array([0x0a, 0x05, 0x61])));
    peer.request(3, "Echo", new Uint8Array([0x12, 0x05, 0x61]));
    const frames = await peer.waitFrames(2);
    const codes = new Map(frames.map((f) => [f.streamId, status(f)]));
    expect(codes.get(1)?.code).toBe(Code.InvalidArgument);
    expect(codes.get(1)?.message).toMatch(/^unmarshal request error: /);
    expect(codes.get(3)?.code).toBe(Code.Internal);
    expect(codes.get(3)?.message).toMatch(/^ttrpc: error unmarshalling payload: /);
    await server.close();
  });

  it("an oversized frame is skipped and answered RESOURCE_EXHAUSTED on its ID; the connection stays usable", async () => {
    const { peer, server } = await rawServer();
    const big = new Uint8Array((4 << 20) + 1);
    peer.write(encodeFrame(1, 1, 0, big));
    peer.request(3, "Echo", echo("after"));
    const frames = await peer.waitFrames(2);
    expect([frames[0]!.streamId, status(frames[0]!)?.code, status(frames[0]!)?.message]).toEqual([
      1,
      Code.ResourceExhausted,
      "message length 4194305 exceed maximum message size of 4194304",
    ]);
    expect([frames[1]!.streamId, status(frames[1]!)?.code ?? 0]).toEqual([3, 0]);
    await server.close();
  });

  it("a truncated frame at EOF closes that connection only", async () => {
    const { peer, server, path } = await rawServer();
    peer.write(new Uint8Array([0, 0, 0, 9, 0, 0, 0, 1, 1]));
    peer.socket.end();
    await peer.waitClosed();
    const client = await connect(path);
    expect((await client.unary(Interop.method.echo, { text: "alive" })).text).toBe("alive");
    client.close();
    await server.close();
  });
});

describe("client wire behaviour", () => {
  it("sends odd, strictly increasing IDs and the documented Request flags, metadata and timeout on every shape", async () => {
    const dir = tempDir();
    const path = join(dir, "raw.sock");
    const frames: Frame[] = [];
    const net = new NetServer();
    const seen = new Promise<RawPeer>((resolve) => net.once("connection", (s) => resolve(new RawPeer(s))));
    await new Promise<void>((r) => net.listen(path, r));
    const client = await connect(path);
    const peer = await seen;
    const opts = { timeoutMs: 1000, metadata: { k: "v" }, signal: AbortSignal.timeout(5000) };
    void client.unary(Interop.method.echo, {}, opts).catch(() => {});
    void client
      .serverStream(Interop.method.serverStream, {}, opts)
      [Symbol.asyncIterator]()
      .next()
      .catch(() => {});
    void client.clientStream(Interop.method.clientStream, [{}], opts).catch(() => {});
    void client
      .bidiStream(Interop.method.bidi, [], opts)
      [Symbol.asyncIterator]()
      .next()
      .catch(() => {});
    frames.push(...(await peer.waitFrames(7)));
    const requests = frames.filter((f) => f.type === 1);
    expect(requests.map((f) => f.streamId)).toEqual([1, 3, 5, 7]);
    const flagsByMethod = Object.fromEntries(
      requests.map((f) => [fromBinary(RequestSchema, f.payload).method, f.flags]),
    );
    expect(flagsByMethod).toEqual({ Echo: 0x00, ServerStream: 0x01, ClientStream: 0x06, Bidi: 0x06 });
    const idOf = (m: string) => requests.find((f) => fromBinary(RequestSchema, f.payload).method === m)!.streamId;
    for (const r of requests) {
      const req = fromBinary(RequestSchema, r.payload);
      expect(req.metadata.map((kv) => `${kv.key}=${kv.value}`)).toEqual(["k=v"]);
      // The Request carries the timeout as given, not what is left of it.
      expect(req.timeoutNano).toBe(1_000_000_000n);
    }
    const data = frames.filter((f) => f.type === 3).map((f) => [f.streamId, f.flags, f.payload.length]);
    const cs = idOf("ClientStream");
    const bidi = idOf("Bidi");
    expect(data).toEqual(
      expect.arrayContaining([
        [cs, 0, 0],
        [cs, 0x05, 0],
        [bidi, 0x05, 0],
      ]),
    );
    client.close();
    net.close();
  });
});

describe("handler order", () => {
  it("handlers start in the order their Requests arrived, streams included", async () => {
    const dir = tempDir();
    const order: string[] = [];
    const server = createServer().register(Interop, {
      serverStream(req) {
        order.push(`stream ${req.text}`);
        return (async function* () {})();
      },
      echo(req) {
        order.push(`unary ${req.text}`);
        return {};
      },
    });
    const path = join(dir, "o.sock");
    await server.listen(path);
    const peer = await RawPeer.connect(path);
    const stream = toBinary(
      RequestSchema,
      create(RequestSchema, { service: Interop.typeName, method: "ServerStream", payload: echo("a") }),
    );
    const unary = toBinary(
      RequestSchema,
      create(RequestSchema, { service: Interop.typeName, method: "Echo", payload: echo("b") }),
    );
    peer.write(new Uint8Array([...encodeFrame(1, 1, 1, stream), ...encodeFrame(3, 1, 0, unary)]));
    await peer.waitFrames(2);
    expect(order).toEqual(["stream a", "unary b"]);
    await server.close();
  });
});
