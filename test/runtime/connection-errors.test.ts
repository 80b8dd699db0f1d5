// Each way the runtime ends a call or a connection has an identity, the
// `reason` of its TtrpcError (docs/protocol.md §14), seen here as a caller
// sees it: never by its message text.
import { Server as NetServer, Socket } from "node:net";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  Code,
  DuplicateServiceError,
  ErrorReason,
  FrameDecoder,
  MessageType,
  TtrpcError,
  connect,
  createServer,
  encodeFrame,
  hasReason,
} from "ttrpc-es";
import { StreamIds } from "../../src/stream-ids.js";
import { Interop, interopImpl, startPair, tempDir } from "../common.js";
import { parked } from "./parked.js";

/** A parked Echo. */
function parking() {
  const { handler, running } = parked();
  return { impl: { ...interopImpl, echo: handler }, running };
}

describe("connection errors as the caller sees them", () => {
  it("peer-closed: the server went away under a pending call", async () => {
    const { impl, running } = parking();
    const { client, server } = await startPair({ impl });
    const call = client.unary(Interop.method.echo, {});
    await running;
    await server.close();
    const err = await call.catch((e: unknown) => e);
    expect(err).toMatchObject({ code: Code.Unavailable, reason: ErrorReason.PeerClosed });
    expect(hasReason(err, ErrorReason.PeerClosed)).toBe(true);
    expect(await client.done).toMatchObject({ reason: ErrorReason.PeerClosed });
  });

  it("local-closed: client.close() fails pending calls, and calls made afterwards", async () => {
    const { impl, running } = parking();
    const { client } = await startPair({ impl });
    const call = client.unary(Interop.method.echo, {});
    await running;
    client.close();
    await expect(call).rejects.toMatchObject({ code: Code.Unavailable, reason: ErrorReason.LocalClosed });
    await expect(client.unary(Interop.method.echo, {})).rejects.toMatchObject({ reason: ErrorReason.LocalClosed });
    expect(await client.done).toMatchObject({ reason: ErrorReason.LocalClosed });
  });

  it("server-shutdown: a handler's signal says the server closed; listen afterwards is refused", async () => {
    const { impl, running } = parking();
    const { client, server, dir } = await startPair({ impl });
    const call = client.unary(Interop.method.echo, {}).catch((e: unknown) => e);
    const ctx = await running;
    await server.close();
    expect(ctx.signal.reason).toMatchObject({ code: Code.Unavailable, reason: ErrorReason.ServerShutdown });
    await expect(server.listen(join(dir, "again.sock"))).rejects.toMatchObject({
      reason: ErrorReason.ServerShutdown,
    });
    await call;
  });

  it("server-shutdown is no news to onConnectionError, nor is either side closing", async () => {
    const heard: TtrpcError[] = [];
    const { client, server } = await startPair({ server: { onConnectionError: (e) => heard.push(e) } });
    await client.unary(Interop.method.echo, {});
    await server.shutdown({ timeoutMs: 0 });
    await client.done;
    expect(heard).toEqual([]);
  });

  it("ids-exhausted: after stream ID 2^32-1 a connection opens no more streams", () => {
    const ids = new StreamIds(0xfffffffd);
    expect(ids.peek()).toBe(0xfffffffd);
    ids.take();
    expect(ids.peek()).toBe(0xffffffff);
    ids.take();
    let err: unknown;
    try {
      ids.peek();
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: Code.Unavailable, reason: ErrorReason.IdsExhausted });
    // The caller is told what to do about it.
    expect(err).toMatchObject({ rawMessage: "ttrpc: stream IDs exhausted; open a new connection" });
  });

  it("protocol-error: a Response that does not decode fails its call, and the client says why", async () => {
    // A peer that answers every Request with bytes that are no ttrpc.Response.
    const path = join(tempDir(), "bad.sock");
    const peer = new NetServer((s) => {
      const decoder = new FrameDecoder(
        {
          frame: (f) => s.write(encodeFrame(f.streamId, MessageType.Response, 0, Uint8Array.of(0x0a, 0xff))),
          oversized: () => {},
        },
        1 << 20,
      );
      s.on("data", (c: Buffer) => decoder.push(c));
      s.on("error", () => {});
    });
    await new Promise<void>((r) => peer.listen(path, r));
    const client = await connect(`unix://${path}`);
    const err = await client.unary(Interop.method.echo, {}).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: Code.Internal, reason: ErrorReason.ProtocolError });
    client.close();
    await client.done;
    await new Promise<void>((r) => peer.close(() => r()));
  });

  it("protocol-error: a connection that ends mid-frame is reported to the server, by reason", async () => {
    let heard!: (e: TtrpcError) => void;
    const got = new Promise<TtrpcError>((r) => (heard = r));
    const { dir } = await startPair({ server: { onConnectionError: (e) => heard(e) } });
    const s = new Socket();
    await new Promise<void>((r) => s.connect({ path: join(dir, "ttrpc.sock") }, () => r()));
    s.end(Uint8Array.of(0, 0, 0, 9, 0, 0));
    expect(await got).toMatchObject({ code: Code.Unavailable, reason: ErrorReason.ProtocolError });
    s.destroy();
  });

  it("stream-full: a handler that does not read its client stream has its signal say so", async () => {
    const { handler, running } = parked();
    const { client } = await startPair({
      server: { streamBufferSize: 2, streamFullGraceMs: 20 },
      impl: { ...interopImpl, clientStream: handler },
    });
    // Ten messages, then an open send side: a half-close would end the input, and an ended
    // input holds what it has without failing (nothing more can arrive).
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    async function* inputs() {
      for (let i = 0; i < 10; i++) yield { text: `${i}` };
      await held;
    }
    const call = client.clientStream(Interop.method.clientStream, inputs()).catch((e: unknown) => e);
    const ctx = await running;
    if (!ctx.signal.aborted) await new Promise((r) => ctx.signal.addEventListener("abort", r, { once: true }));
    expect(ctx.signal.reason).toMatchObject({ code: Code.InvalidArgument, reason: ErrorReason.StreamFull });
    // The client hears the status: a status, so no reason of its own.
    expect(await call).toMatchObject({
      code: Code.InvalidArgument,
      rawMessage: "data handling error: ttrpc: stream buffer full",
    });
    release();
  });

  it("a status a handler sent has no reason: it did not come from the runtime", async () => {
    const { client } = await startPair();
    const err = await client
      .unary(Interop.method.echo, { failCode: Code.Unavailable, failMessage: "ttrpc: closed" })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: Code.Unavailable, rawMessage: "ttrpc: closed", reason: undefined });
    expect(hasReason(err)).toBe(false);
  });
});

describe("register", () => {
  it("throws a DuplicateServiceError that names the service", () => {
    const server = createServer().register(Interop, interopImpl);
    let err: unknown;
    try {
      server.register(Interop, interopImpl);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DuplicateServiceError);
    expect(err).toBeInstanceOf(TtrpcError);
    expect(err).toMatchObject({
      code: Code.AlreadyExists,
      service: Interop.typeName,
      name: "DuplicateServiceError",
      rawMessage: `ttrpc: service ${Interop.typeName} is already registered`,
    });
    // Another name for the same service is fine.
    expect(() => server.register(Interop, interopImpl, { name: "other.Interop" })).not.toThrow();
  });
});
