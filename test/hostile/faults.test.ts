// Fault injection: the peer vanishes mid-unary, mid-stream and mid-write; the
// socket errors with ECONNRESET and EPIPE; the server goes away with 1,000
// calls in flight. Every pending call settles with the documented code, every
// handler's signal fires, and open handles and ref'd timers return to where
// they were (checked by polling the event loop, not by sleeping).
import { setMaxListeners } from "node:events";
import { Server as NetServer, Socket } from "node:net";
import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { Code, TtrpcError, createClient, createServer, type Client, type ServiceImpl } from "ttrpc-es";
import { Interop, rejection, tempDir } from "../common.js";
import { checkLeaksAfterAll, expectResourcesSettled, resourceCounts } from "../leak-check.js";
import { CallTracker, expectServing, park, tameImpl, trapProcessErrors, until } from "./helpers.js";

checkLeaksAfterAll();

/** A server on our own listener, so the test holds the server's end of every socket. */
async function exposedServer(impl: Partial<ServiceImpl<typeof Interop>>, transport: "unix" | "tcp" = "unix") {
  const tracker = new CallTracker();
  const server = createServer({ interceptors: [tracker.interceptor] }).register(Interop, { ...tameImpl, ...impl });
  const net = new NetServer();
  const accepted: Socket[] = [];
  net.on("connection", (s) => accepted.push(s));
  const path = join(tempDir(), "faults.sock");
  await new Promise<void>((r) => (transport === "unix" ? net.listen(path, r) : net.listen(0, "127.0.0.1", r)));
  await server.listen(net);
  const dial = async (): Promise<{ client: Client; socket: Socket }> => {
    const before = accepted.length;
    const socket = new Socket();
    await new Promise<void>((r) =>
      transport === "unix"
        ? socket.connect({ path }, r)
        : socket.connect({ port: (net.address() as { port: number }).port, host: "127.0.0.1" }, r),
    );
    const client = createClient(socket);
    onTestFinished(() => client.close());
    await until(() => accepted.length > before, "the server to accept");
    return { client, socket };
  };
  onTestFinished(async () => {
    await server.close();
  });
  return { server, tracker, accepted, dial };
}

async function drain(it: AsyncIterable<unknown>, seen: unknown[] = []): Promise<unknown[]> {
  for await (const m of it) seen.push(m);
  return seen;
}

const causeCode = (e: unknown): string | undefined => {
  for (let c: unknown = e; c instanceof Error; c = c.cause)
    if ((c as NodeJS.ErrnoException).code !== undefined && typeof (c as NodeJS.ErrnoException).code === "string")
      return (c as NodeJS.ErrnoException).code;
  return undefined;
};

describe("the peer vanishes", () => {
  it("server's socket destroyed mid-unary: the call gets UNAVAILABLE, the handler's signal fires", async () => {
    trapProcessErrors();
    const base = resourceCounts();
    const { accepted, dial, tracker, server } = await exposedServer({ echo: (_r, ctx) => park(ctx) });
    const { client } = await dial();
    const call = client.unary(Interop.method.echo, { text: "x" });
    await until(() => tracker.signals.length === 1, "the handler");
    accepted[0]!.destroy();
    expect(await rejection(call, TtrpcError)).toMatchObject({ code: Code.Unavailable });
    await until(() => tracker.open === 0, "the handler's signal");
    expect(tracker.signals[0]!.reason).toMatchObject({ code: Code.Unavailable });
    await server.close();
    await expectResourcesSettled(base);
  });

  it("client vanishes mid-unary: its handler's signal fires with UNAVAILABLE, the server serves others", async () => {
    trapProcessErrors();
    const base = resourceCounts();
    const { dial, tracker, server } = await exposedServer({
      echo: (r, ctx) => (r.delayMs > 0 ? park(ctx) : { text: r.text }),
    });
    const { client, socket } = await dial();
    const call = client.unary(Interop.method.echo, { delayMs: 1 });
    await until(() => tracker.signals.length === 1, "the handler");
    socket.destroy();
    expect(await rejection(call, TtrpcError)).toMatchObject({ code: Code.Unavailable });
    await until(() => tracker.open === 0, "the handler's signal");
    expect(tracker.signals[0]!.reason).toMatchObject({ code: Code.Unavailable });
    const other = await dial();
    await expectServing(other.client);
    other.client.close();
    await server.close();
    await expectResourcesSettled(base);
  });

  it("mid-stream, all four shapes: the messages that arrived are kept, then UNAVAILABLE; every handler's signal fires", async () => {
    trapProcessErrors();
    const base = resourceCounts();
    const { accepted, dial, tracker, server } = await exposedServer({
      async *serverStream(_r, ctx) {
        yield { seq: 0 };
        await park(ctx);
      },
      async clientStream(reqs, ctx) {
        for await (const _ of reqs) await park(ctx);
        return {};
      },
      async *bidi(reqs, ctx) {
        for await (const r of reqs) {
          yield { text: r.text };
          await park(ctx);
        }
      },
    });
    const { client } = await dial();
    const never = new Promise<never>(() => {});
    async function* oneThenHang() {
      yield { text: "a" };
      await never;
    }
    const ss: unknown[] = [];
    const bd: unknown[] = [];
    const results = [
      rejection(drain(client.serverStream(Interop.method.serverStream, {}), ss), TtrpcError),
      rejection(client.clientStream(Interop.method.clientStream, oneThenHang()), TtrpcError),
      rejection(drain(client.bidiStream(Interop.method.bidi, oneThenHang()), bd), TtrpcError),
    ];
    await until(() => tracker.signals.length === 3 && ss.length === 1 && bd.length === 1, "three streams under way");
    accepted[0]!.destroy();
    for (const r of await Promise.all(results)) expect(r.code).toBe(Code.Unavailable);
    expect([ss.length, bd.length]).toEqual([1, 1]);
    await until(() => tracker.open === 0, "the handlers' signals");
    await server.close();
    await expectResourcesSettled(base);
  });

  it("mid-write: a large client stream when the server dies fails UNAVAILABLE, stops pulling its input and closes it", async () => {
    trapProcessErrors();
    const base = resourceCounts();
    const { accepted, dial, tracker, server } = await exposedServer({
      async clientStream(reqs, ctx) {
        for await (const _ of reqs) {
          // The first megabyte in, the server dies with the rest of the stream still being written.
          accepted[0]!.destroy();
          await park(ctx);
        }
        return {};
      },
    });
    const { client } = await dial();
    let produced = 0;
    let closed = false;
    async function* big() {
      try {
        for (let i = 0; i < 1000; i++) {
          produced++;
          yield { payload: new Uint8Array(1 << 20) };
        }
      } finally {
        closed = true;
      }
    }
    const err = await rejection(client.clientStream(Interop.method.clientStream, big()), TtrpcError);
    expect(err.code).toBe(Code.Unavailable);
    await until(() => closed, "the input to be closed");
    expect(produced).toBeLessThan(1000);
    await until(() => tracker.open === 0, "the handler's signal");
    await server.close();
    await expectResourcesSettled(base);
  });

  it("mid-write the other way: a client that vanishes during a large server stream ends its handler", async () => {
    trapProcessErrors();
    const base = resourceCounts();
    let pulled = 0;
    let finished = false;
    const { dial, tracker, server } = await exposedServer({
      async *serverStream() {
        try {
          for (let i = 0; i < 1000; i++) {
            pulled++;
            yield { seq: i, payload: new Uint8Array(1 << 20) };
          }
        } finally {
          finished = true;
        }
      },
    });
    const { client, socket } = await dial();
    const seen: unknown[] = [];
    const call = rejection(drain(client.serverStream(Interop.method.serverStream, {}), seen), TtrpcError);
    await until(() => seen.length >= 2, "the stream to flow");
    socket.destroy();
    expect((await call).code).toBe(Code.Unavailable);
    await until(() => tracker.open === 0 && finished, "the handler to end");
    expect(pulled).toBeLessThan(1000);
    await server.close();
    await expectResourcesSettled(base);
  });
});

describe("socket errors", () => {
  it("ECONNRESET from the server (RST over loopback TCP): pending calls get UNAVAILABLE, the cause says ECONNRESET", async () => {
    trapProcessErrors();
    const base = resourceCounts();
    const { accepted, dial, tracker, server } = await exposedServer({ echo: (_r, ctx) => park(ctx) }, "tcp");
    const { client } = await dial();
    const calls = Array.from({ length: 10 }, () => client.unary(Interop.method.echo, {}));
    await until(() => tracker.signals.length === 10, "the handlers");
    accepted[0]!.resetAndDestroy();
    for (const c of calls) expect(await rejection(c, TtrpcError)).toMatchObject({ code: Code.Unavailable });
    const why = await client.done;
    expect(why.code).toBe(Code.Unavailable);
    expect(causeCode(why)).toBe("ECONNRESET");
    await until(() => tracker.open === 0, "the handlers' signals");
    await server.close();
    await expectResourcesSettled(base);
  });

  it("ECONNRESET from the client: the server ends that connection's handlers and serves others", async () => {
    trapProcessErrors();
    const base = resourceCounts();
    const { dial, tracker, server } = await exposedServer(
      { echo: (r, ctx) => (r.delayMs > 0 ? park(ctx) : { text: r.text }) },
      "tcp",
    );
    const { client, socket } = await dial();
    const calls = Array.from({ length: 10 }, () => client.unary(Interop.method.echo, { delayMs: 1 }));
    await until(() => tracker.signals.length === 10, "the handlers");
    socket.resetAndDestroy();
    for (const c of calls) expect(await rejection(c, TtrpcError)).toMatchObject({ code: Code.Unavailable });
    await until(() => tracker.open === 0, "the handlers' signals");
    for (const s of tracker.signals) expect(s.reason).toMatchObject({ code: Code.Unavailable });
    await until(() => server.connectionCount === 0, "the reset connection to be dropped");
    const other = await dial();
    await expectServing(other.client);
    other.client.close();
    await server.close();
    await expectResourcesSettled(base);
  });

  it("EPIPE: the client writes to a socket the server has just closed; the call and the client settle UNAVAILABLE", async () => {
    trapProcessErrors();
    const base = resourceCounts();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { accepted, dial, server } = await exposedServer({
      async clientStream(reqs) {
        for await (const _ of reqs) {
          // Close the server's end, then let the client write in this same turn,
          // before its reader can see the EOF: the write hits a closed peer.
          accepted[0]!.destroy();
          release();
        }
        return {};
      },
    });
    const { client } = await dial();
    async function* input() {
      yield { text: "a" };
      await gate;
      yield { payload: new Uint8Array(64 * 1024) };
    }
    expect((await rejection(client.clientStream(Interop.method.clientStream, input()), TtrpcError)).code).toBe(
      Code.Unavailable,
    );
    const why = await client.done;
    expect(why.code).toBe(Code.Unavailable);
    expect(causeCode(why)).toBe("EPIPE");
    await server.close();
    await expectResourcesSettled(base);
  });
});

describe("the server goes away with 1,000 calls in flight", () => {
  const N = 1000;

  /** 1,000 calls of the four shapes, all parked in their handlers. */
  async function inFlight() {
    const { client, dial, tracker, server, accepted } = await (async () => {
      const s = await exposedServer({
        echo: (_r, ctx) => park(ctx),
        async *serverStream(_r, ctx) {
          await park(ctx);
        },
        async clientStream(_reqs, ctx) {
          return park(ctx);
        },
        async *bidi(_reqs, ctx) {
          await park(ctx);
        },
      });
      const { client } = await s.dial();
      return { ...s, client };
    })();
    const calls: Promise<TtrpcError>[] = [];
    for (let i = 0; i < N; i++) {
      switch (i % 4) {
        case 0:
          calls.push(rejection(client.unary(Interop.method.echo, {}), TtrpcError));
          break;
        case 1:
          calls.push(rejection(drain(client.serverStream(Interop.method.serverStream, {})), TtrpcError));
          break;
        case 2:
          calls.push(rejection(client.clientStream(Interop.method.clientStream, [{}]), TtrpcError));
          break;
        default:
          calls.push(rejection(drain(client.bidiStream(Interop.method.bidi, [{}])), TtrpcError));
      }
    }
    await until(() => tracker.signals.length === N, `${N} handlers`);
    return { client, dial, tracker, server, accepted, calls };
  }

  it("close(): all 1,000 get UNAVAILABLE, all 1,000 handler signals fire, nothing is left open", async () => {
    trapProcessErrors();
    const base = resourceCounts();
    const { server, tracker, calls, client } = await inFlight();
    await server.close();
    const errors = await Promise.all(calls);
    expect(errors.filter((e) => e.code !== Code.Unavailable)).toEqual([]);
    expect(tracker.open).toBe(0);
    for (const s of tracker.signals) expect(s.reason).toMatchObject({ code: Code.Unavailable });
    expect((await client.done).code).toBe(Code.Unavailable);
    await expectResourcesSettled(base);
  });

  it("shutdown with a deadline: the 1,000 still running are cancelled with UNAVAILABLE", async () => {
    trapProcessErrors();
    const base = resourceCounts();
    const { server, tracker, calls } = await inFlight();
    await server.shutdown({ timeoutMs: 20 });
    const errors = await Promise.all(calls);
    expect(errors.filter((e) => e.code !== Code.Unavailable)).toEqual([]);
    expect(tracker.open).toBe(0);
    await expectResourcesSettled(base);
  });

  it("graceful shutdown: the 1,000 finish normally, a new call gets UNAVAILABLE", async () => {
    trapProcessErrors();
    const base = resourceCounts();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const s = await exposedServer({
      async echo(r) {
        await gate;
        return { text: r.text };
      },
    });
    const { client } = await s.dial();
    const calls = Array.from({ length: N }, (_, i) => client.unary(Interop.method.echo, { text: `${i}` }));
    await until(() => s.tracker.signals.length === N, `${N} handlers`);
    const done = s.server.shutdown();
    expect(await rejection(client.unary(Interop.method.echo, {}), TtrpcError)).toMatchObject({
      code: Code.Unavailable,
    });
    release();
    expect((await Promise.all(calls)).every((r, i) => r.text === `${i}`)).toBe(true);
    await done;
    expect((await client.done).code).toBe(Code.Unavailable);
    await expectResourcesSettled(base);
  });

  it("a client that closes with 1,000 calls pending: all get UNAVAILABLE; the server's 1,000 handlers are cancelled", async () => {
    trapProcessErrors();
    const base = resourceCounts();
    const { client, tracker, calls, server } = await inFlight();
    client.close();
    const errors = await Promise.all(calls);
    expect(errors.filter((e) => e.code !== Code.Unavailable)).toEqual([]);
    await until(() => tracker.open === 0, "the handlers' signals");
    await server.close();
    await expectResourcesSettled(base);
  });

  it("aborting 1,000 calls locally: all get CANCELLED, the connection stays usable", async () => {
    trapProcessErrors();
    const base = resourceCounts();
    const s = await exposedServer({ echo: (r, ctx) => (r.delayMs > 0 ? park(ctx) : { text: r.text }) });
    const { client } = await s.dial();
    const ac = new AbortController();
    setMaxListeners(N + 10, ac.signal); // one signal shared by 1,000 calls is intended here
    const calls = Array.from({ length: N }, () =>
      rejection(client.unary(Interop.method.echo, { delayMs: 1 }, { signal: ac.signal }), TtrpcError),
    );
    await until(() => s.tracker.signals.length === N, `${N} handlers`);
    ac.abort();
    expect((await Promise.all(calls)).filter((e) => e.code !== Code.Canceled)).toEqual([]);
    await expectServing(client);
    // No cancel frame exists: the server's handlers run on until the connection goes.
    expect(s.tracker.open).toBe(N);
    client.close();
    await until(() => s.tracker.open === 0, "the handlers' signals");
    await s.server.close();
    await expectResourcesSettled(base);
  });
});
