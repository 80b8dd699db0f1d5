// The QMP client against a QMP server on a real unix socket. The server is a
// small script here, not QEMU: these cases (out-of-order answers, errors,
// a close mid-command, a bad greeting) cannot be provoked in QEMU on purpose.
// The interop suite drives real QEMU through the same client.
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { describe, expect, it, onTestFinished } from "vitest";
import { QmpClient, QmpClosedError, QmpCommandError, QmpProtocolError } from "ttrpc-es/migration/qemu";
import { tempDir } from "../../common.js";

const GREETING = { QMP: { version: { qemu: { micro: 22, minor: 2, major: 7 }, package: "test" }, capabilities: [] } };

interface Command {
  execute: string;
  arguments?: Record<string, unknown>;
  id?: number;
}

/** A QMP server: sends `greeting`, then hands every command line to `onCommand`. */
async function qmpServer(
  onCommand: (c: Command, reply: (o: object) => void, socket: Socket) => void,
  greeting: object = GREETING,
): Promise<{ path: string; server: Server; received: Command[] }> {
  const path = join(tempDir(), "qmp.sock");
  const received: Command[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    const reply = (o: object) => socket.write(`${JSON.stringify(o)}\n`);
    reply(greeting);
    createInterface({ input: socket }).on("line", (line) => {
      const c = JSON.parse(line) as Command;
      received.push(c);
      if (c.execute === "qmp_capabilities") reply({ return: {}, id: c.id });
      else onCommand(c, reply, socket);
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  onTestFinished(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return { path, server, received };
}

async function connected(path: string): Promise<QmpClient> {
  const client = await QmpClient.connect(path);
  onTestFinished(() => client[Symbol.asyncDispose]());
  return client;
}

describe("QmpClient", () => {
  it("reads the greeting, leaves negotiation mode first, and matches answers to commands by id", async () => {
    const held: Array<() => void> = [];
    const { path, received } = await qmpServer((c, reply) => {
      // Answer the first command only after the second: ids, not order, pair them.
      held.push(() => reply({ return: { echoed: c.execute }, id: c.id }));
      if (held.length === 2) for (const h of held.reverse()) h();
    });
    const client = await connected(path);
    expect(client.version).toEqual({ major: 7, minor: 2, micro: 22 });
    const [a, b] = await Promise.all([client.execute("query-status"), client.execute("query-migrate", { x: 1 })]);
    expect(a).toEqual({ echoed: "query-status" });
    expect(b).toEqual({ echoed: "query-migrate" });
    expect(received.map((c) => c.execute)).toEqual(["qmp_capabilities", "query-status", "query-migrate"]);
    expect(received[2]!.arguments).toEqual({ x: 1 });
    expect(new Set(received.map((c) => c.id)).size).toBe(3);
  });

  it("rejects a command QEMU answers with an error, keeping its class and description", async () => {
    const { path } = await qmpServer((c, reply) =>
      reply({ error: { class: "GenericError", desc: "There's a migration process in progress" }, id: c.id }),
    );
    const client = await connected(path);
    const e = await client.execute("migrate", { uri: "unix:/x" }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(QmpCommandError);
    expect((e as QmpCommandError).errorClass).toBe("GenericError");
    expect((e as QmpCommandError).description).toBe("There's a migration process in progress");
    expect((e as QmpCommandError).command).toBe("migrate");
  });

  it("delivers events in order with QEMU's timestamp, to listeners and to nextEvent", async () => {
    const { path } = await qmpServer((c, reply) => {
      reply({
        event: "MIGRATION",
        data: { status: "setup" },
        timestamp: { seconds: 1700000000, microseconds: 250000 },
      });
      reply({ event: "MIGRATION_PASS", data: { pass: 1 }, timestamp: { seconds: 1700000000, microseconds: 500000 } });
      reply({ event: "MIGRATION", data: { status: "active" }, timestamp: { seconds: 1700000001, microseconds: 0 } });
      reply({ return: {}, id: c.id });
    });
    const client = await connected(path);
    const seen: string[] = [];
    const stop = client.onEvent((e) => seen.push(`${e.event}:${JSON.stringify(e.data)}`));
    const active = client.nextEvent((e) => e.event === "MIGRATION" && e.data.status === "active");
    await client.execute("migrate", { uri: "unix:/x" });
    const e = await active;
    stop();
    expect(e.timestampMs).toBe(1700000001000);
    expect(seen).toEqual([
      'MIGRATION:{"status":"setup"}',
      'MIGRATION_PASS:{"pass":1}',
      'MIGRATION:{"status":"active"}',
    ]);
  });

  it("rejects pending commands and event waits when QEMU goes away", async () => {
    const { path } = await qmpServer((_c, _reply, socket) => socket.destroy());
    const client = await connected(path);
    const waiting = client.nextEvent(() => true);
    const e = await client.execute("quit").catch((x: unknown) => x);
    expect(e).toBeInstanceOf(QmpClosedError);
    await expect(waiting).rejects.toBeInstanceOf(QmpClosedError);
    await expect(client.execute("query-status")).rejects.toBeInstanceOf(QmpClosedError);
    expect(client.isClosed).toBe(true);
  });

  it("aborts an event wait with the signal's reason", async () => {
    const { path } = await qmpServer(() => undefined);
    const client = await connected(path);
    const ac = new AbortController();
    const waiting = client.nextEvent(() => true, ac.signal);
    ac.abort(new Error("enough"));
    await expect(waiting).rejects.toThrow("enough");
  });

  it("refuses a server that does not greet with QMP", async () => {
    const { path } = await qmpServer(() => undefined, { hello: "not qmp" });
    await expect(QmpClient.connect(path)).rejects.toBeInstanceOf(QmpProtocolError);
  });

  it("refuses a socket nobody listens on with QmpClosedError", async () => {
    await expect(QmpClient.connect(join(tempDir(), "none.sock"))).rejects.toBeInstanceOf(QmpClosedError);
  });
});

describe("QmpClient, line by line", () => {
  it("reads messages split across writes and several in one write, skipping blank lines and stray answers", async () => {
    const { path } = await qmpServer((c, _reply, socket) => {
      const answer = JSON.stringify({ return: { n: 1 }, id: c.id });
      socket.write(`\n${JSON.stringify({ return: "stray", id: 999 })}\n${answer.slice(0, 5)}`);
      setImmediate(() => socket.write(`${answer.slice(5)}\r\n`));
    });
    const client = await connected(path);
    expect(await client.execute("query-status")).toEqual({ n: 1 });
    expect(client.isClosed).toBe(false);
  });

  it("fills in an event's missing data and timestamp, and adds QEMU's microseconds", async () => {
    const { path } = await qmpServer((c, reply) => {
      reply({ event: "STOP" });
      reply({ event: "RESUME", data: { x: 1 }, timestamp: { seconds: 2, microseconds: 250_000 } });
      reply({ return: {}, id: c.id });
    });
    const client = await connected(path);
    const events: unknown[] = [];
    client.onEvent(() => {
      throw new Error("a listener's bug");
    });
    client.onEvent((e) => events.push(e));
    await client.execute("cont");
    expect(events).toEqual([
      { event: "STOP", data: {}, timestampMs: 0 },
      { event: "RESUME", data: { x: 1 }, timestampMs: 2250 },
    ]);
  });

  it.each([
    ["a line that is not JSON", "oops"],
    ["a JSON array", "[1]"],
    ["JSON null", "null"],
  ])("fails pending commands with QmpProtocolError on %s, and closes", async (_what, line) => {
    const { path } = await qmpServer((_c, _reply, socket) => socket.write(`${line}\n`));
    const client = await connected(path);
    await expect(client.execute("query-status")).rejects.toBeInstanceOf(QmpProtocolError);
    await client.closed;
    expect(client.isClosed).toBe(true);
  });

  it("stops a listener and an event wait once they are done", async () => {
    const { path } = await qmpServer((c, reply) => {
      reply({ event: "STOP" });
      reply({ return: {}, id: c.id });
    });
    const client = await connected(path);
    const heard: string[] = [];
    const stop = client.onEvent((e) => heard.push(e.event));
    const first = client.nextEvent((e) => e.event === "STOP");
    await client.execute("stop");
    expect((await first).event).toBe("STOP");
    stop();
    await client.execute("stop");
    expect(heard).toEqual(["STOP"]);
  });

  it("rejects an event wait whose signal is already aborted, or aborted without an Error", async () => {
    const { path } = await qmpServer(() => undefined);
    const client = await connected(path);
    const reason = new Error("already");
    await expect(client.nextEvent(() => true, AbortSignal.abort(reason))).rejects.toBe(reason);
    const ac = new AbortController();
    const waiting = client.nextEvent(() => true, ac.signal);
    ac.abort("not an error");
    await expect(waiting).rejects.toThrow("aborted");
  });

  it("rejects an event wait at once on a closed client", async () => {
    const { path } = await qmpServer(() => undefined);
    const client = await connected(path);
    await client[Symbol.asyncDispose]();
    await expect(client.nextEvent(() => true)).rejects.toBeInstanceOf(QmpClosedError);
  });

  it("gives up connecting when the signal aborts before the greeting", async () => {
    const path = join(tempDir(), "silent.sock");
    const sockets = new Set<Socket>();
    const server = createServer((s) => sockets.add(s));
    await new Promise<void>((resolve) => server.listen(path, resolve));
    onTestFinished(async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    });
    const ac = new AbortController();
    const connecting = QmpClient.connect(path, { signal: ac.signal });
    await new Promise((resolve) => server.once("connection", resolve));
    ac.abort(new Error("cancelled"));
    const e = await connecting.catch((x: unknown) => x);
    expect(e).toBeInstanceOf(QmpClosedError);
    expect((e as Error).message).toBe("cannot connect to QMP: cancelled");
  });

  it("refuses a server that closes before its greeting", async () => {
    const path = join(tempDir(), "closing.sock");
    const server = createServer((s) => s.end());
    await new Promise<void>((resolve) => server.listen(path, resolve));
    onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const e = await QmpClient.connect(path).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(QmpClosedError);
    expect((e as Error).message).toBe("QMP closed before its greeting");
  });

  it("refuses a greeting without a numeric version", async () => {
    const { path } = await qmpServer(() => undefined, { QMP: { version: { qemu: { major: "7" } } } });
    await expect(QmpClient.connect(path)).rejects.toBeInstanceOf(QmpProtocolError);
  });
});
