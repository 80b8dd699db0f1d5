import { spawn } from "node:child_process";
import { once } from "node:events";
import { statSync, writeFileSync, existsSync } from "node:fs";
import { Socket } from "node:net";
import { join } from "node:path";
import { Duplex, PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { Code, ErrorReason, TtrpcError, connect, createClient, createServer, type HandlerContext } from "ttrpc-es";
import { Interop, interopImpl, startPair, tempDir } from "../common.js";

function duplexPair(): [Duplex, Duplex] {
  const a = new PassThrough();
  const b = new PassThrough();
  return [Duplex.from({ readable: a, writable: b }), Duplex.from({ readable: b, writable: a })];
}

/** A handler that parks until its signal fires, and reports each park and abort. */
function parking() {
  const parked: HandlerContext[] = [];
  const aborted: unknown[] = [];
  let notify = () => {};
  const waitParked = async (n: number) => {
    while (parked.length < n) await new Promise<void>((r) => (notify = r));
  };
  const park = (ctx: HandlerContext) =>
    new Promise<never>((_, reject) => {
      parked.push(ctx);
      notify();
      ctx.signal.addEventListener("abort", () => {
        aborted.push(ctx.signal.reason);
        reject(ctx.signal.reason);
      });
    });
  return { parked, aborted, waitParked, park };
}

describe("transports", () => {
  it("serves a Linux abstract socket", async () => {
    const server = createServer().register(Interop, interopImpl);
    const name = `ttrpc-es-test-${process.pid}-${Math.random().toString(36).slice(2)}`;
    const address = await server.listen(`unix-abstract:${name}`);
    expect(address).toBe(`unix-abstract:${name}`);
    const client = await connect(`unix:@${name}`);
    expect((await client.unary(Interop.method.echo, { text: "abstract" })).text).toBe("abstract");
    client.close();
    await server.close();
  });

  it("serves TCP on an ephemeral loopback port", async () => {
    const server = createServer().register(Interop, interopImpl);
    const address = await server.listen("tcp:127.0.0.1:0");
    expect(address).toMatch(/^tcp:127\.0\.0\.1:\d+$/);
    const client = await connect(address);
    expect((await client.unary(Interop.method.echo, { text: "tcp" })).text).toBe("tcp");
    client.close();
    await server.close();
  });

  it("runs over any Duplex, e.g. an in-memory pair", async () => {
    const [a, b] = duplexPair();
    const server = createServer().register(Interop, interopImpl);
    server.serveConnection(b);
    const client = createClient(a);
    expect((await client.unary(Interop.method.echo, { text: "mem" })).text).toBe("mem");
    const seqs: number[] = [];
    for await (const m of client.serverStream(Interop.method.serverStream, { count: 3 })) seqs.push(m.seq);
    expect(seqs).toEqual([0, 1, 2]);
    client.close();
    await server.close();
  });
});

describe("unix socket files", () => {
  it("creates the socket with mode 0600 unless asked otherwise", async () => {
    const dir = tempDir();
    const server = createServer();
    await server.listen(join(dir, "a.sock"));
    await server.listen(join(dir, "b.sock"), { socketMode: 0o660 });
    expect(statSync(join(dir, "a.sock")).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, "b.sock")).mode & 0o777).toBe(0o660);
    await server.close();
    expect(existsSync(join(dir, "a.sock"))).toBe(false);
  });

  it("replaces a stale socket file, refuses a live one, never removes a regular file", async () => {
    const dir = tempDir();
    const path = join(dir, "s.sock");
    const first = createServer();
    await first.listen(path);
    await expect(createServer().listen(path)).rejects.toThrow(/already listening/);
    await first.close();
    // A server killed with SIGKILL leaves its socket file behind.
    const child = spawn(process.execPath, [
      "-e",
      `require("net").createServer().listen(${JSON.stringify(path)}, () => console.log("up"))`,
    ]);
    await new Promise<void>((r) => child.stdout.once("data", () => r()));
    child.kill("SIGKILL");
    await new Promise<void>((r) => child.once("exit", () => r()));
    expect(statSync(path).isSocket()).toBe(true);
    const second = createServer().register(Interop, interopImpl);
    await second.listen(path);
    const client = await connect(path);
    expect((await client.unary(Interop.method.echo, { text: "fresh" })).text).toBe("fresh");
    client.close();
    await second.close();
    const file = join(dir, "not-a-socket");
    writeFileSync(file, "keep me");
    await expect(createServer().listen(file)).rejects.toThrow(/not a socket/);
    expect(existsSync(file)).toBe(true);
  });
});

describe("connection loss", () => {
  it("a pending unary call settles with UNAVAILABLE when the server closes at once, and the handler's signal fires", async () => {
    const p = parking();
    const { client, server } = await startPair({ impl: { echo: (_r, ctx) => p.park(ctx) } });
    const call = client.unary(Interop.method.echo, {});
    await p.waitParked(1);
    await server.close();
    await expect(call).rejects.toMatchObject({ code: Code.Unavailable });
    expect(p.aborted).toHaveLength(1);
    // The handler learns why, in Go's words.
    expect(p.aborted[0]).toMatchObject({ rawMessage: "ttrpc: server closed", reason: ErrorReason.ServerShutdown });
    await expect(client.unary(Interop.method.echo, {})).rejects.toMatchObject({ code: Code.Unavailable });
  });

  it("a stream mid-way settles with UNAVAILABLE after the messages that arrived", async () => {
    const { client, address } = await startPair();
    const seqs: number[] = [];
    let err: unknown;
    try {
      for await (const m of client.serverStream(Interop.method.serverStream, { count: 1000, delayMs: 5 })) {
        seqs.push(m.seq);
        if (m.seq === 2) client.close();
      }
    } catch (e) {
      err = e;
    }
    expect(address).toMatch(/^unix:/);
    expect(seqs.slice(0, 3)).toEqual([0, 1, 2]);
    expect(err).toMatchObject({ code: Code.Unavailable });
  });

  it("the server's handlers are cancelled when the client goes away mid-stream", async () => {
    const p = parking();
    const { client } = await startPair({
      impl: {
        async *serverStream(_r, ctx) {
          await p.park(ctx);
        },
      },
    });
    void (async () => {
      for await (const _ of client.serverStream(Interop.method.serverStream, {}));
    })().catch(() => {});
    await p.waitParked(1);
    client.close();
    while (p.aborted.length === 0) await new Promise((r) => setImmediate(r));
    expect(p.aborted[0]).toBeInstanceOf(TtrpcError);
  });
});

describe("shutdown", () => {
  it("graceful: in-flight calls finish, new calls get UNAVAILABLE, the listener is gone", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let started = 0;
    let notify = () => {};
    const { client, server, address } = await startPair({
      impl: {
        async echo(req) {
          started++;
          notify();
          await gate;
          return { text: req.text };
        },
      },
    });
    const calls = Array.from({ length: 10 }, (_, i) => client.unary(Interop.method.echo, { text: `c${i}` }));
    while (started < 10) await new Promise<void>((r) => (notify = r));
    const done = server.shutdown();
    await expect(client.unary(Interop.method.echo, {})).rejects.toMatchObject({ code: Code.Unavailable });
    await expect(connect(address)).rejects.toMatchObject({ code: Code.Unavailable });
    release();
    expect((await Promise.all(calls)).map((r) => r.text)).toEqual(calls.map((_, i) => `c${i}`));
    await done;
    expect(server.connectionCount).toBe(0);
    expect(await client.done).toMatchObject({ code: Code.Unavailable });
  });

  it("graceful with a deadline: calls still running then are cancelled", async () => {
    const p = parking();
    const { client, server } = await startPair({ impl: { echo: (_r, ctx) => p.park(ctx) } });
    const calls = Array.from({ length: 5 }, () => client.unary(Interop.method.echo, {}));
    await p.waitParked(5);
    await server.shutdown({ timeoutMs: 20 });
    for (const c of calls) await expect(c).rejects.toMatchObject({ code: Code.Unavailable });
    expect(p.aborted).toHaveLength(5);
    // The handlers learn why, in Go's words.
    expect(p.aborted[0]).toMatchObject({ rawMessage: "ttrpc: server shut down", reason: ErrorReason.ServerShutdown });
    expect(server.connectionCount).toBe(0);
  });

  it("closes an idle connection at once, so a graceful shutdown does not wait for the client", async () => {
    const { client, server } = await startPair();
    await client.unary(Interop.method.echo, {});
    await server.shutdown();
    expect(await client.done).toMatchObject({ code: Code.Unavailable });
    expect(server.connectionCount).toBe(0);
  });

  it("once closed or shutting down, listen refuses and a handed-in connection is closed at once", async () => {
    for (const stop of ["close", "shutdown"] as const) {
      const server = createServer().register(Interop, interopImpl);
      await server[stop]();
      await expect(server.listen(join(tempDir(), "late.sock"))).rejects.toMatchObject({
        code: Code.Unavailable,
        rawMessage: "ttrpc: server closed",
      });
      const duplex = new PassThrough();
      server.serveConnection(duplex);
      expect(duplex.destroyed).toBe(true);
      expect(server.connectionCount).toBe(0);
    }
  });

  it("a connection still being authorized when the server closes is dropped, not served", async () => {
    let allow!: () => void;
    const server = createServer({ authorize: () => new Promise<void>((resolve) => (allow = resolve)) });
    const duplex = new PassThrough();
    server.serveConnection(duplex);
    expect(duplex.isPaused()).toBe(true);
    await server.close();
    const closed = once(duplex, "close");
    allow();
    await closed;
    expect(server.connectionCount).toBe(0);
  });
});

describe("onConnectionError", () => {
  it("hears of a connection that ended mid-frame, not of ordinary closes", async () => {
    const errors: TtrpcError[] = [];
    let heard!: () => void;
    const got = new Promise<void>((r) => (heard = r));
    const { client, dir } = await startPair({
      server: {
        onConnectionError: (e) => {
          errors.push(e);
          heard();
        },
      },
    });
    expect((await client.unary(Interop.method.echo, { text: "x" })).text).toBe("x");
    client.close();
    await client.done;
    const s = new Socket();
    await new Promise<void>((r) => s.connect({ path: join(dir, "ttrpc.sock") }, () => r()));
    s.end(new Uint8Array([0, 0, 0, 9, 0, 0, 0, 1]));
    await got;
    expect(errors.map((e) => [e.rawMessage, e.reason])).toEqual([
      ["ttrpc: connection closed in the middle of a frame", ErrorReason.ProtocolError],
    ]);
    s.destroy();
  });
});
