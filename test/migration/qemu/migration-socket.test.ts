// The migration stream's rendezvous in fd mode on real sockets (a unix
// socket in a temp folder, and loopback TCP): binding, the token check, the
// one-byte answer, and the hand-over to QEMU, whose `getfd` is a recording
// function here (the module takes it as a parameter). The URI mapping and
// the descriptor checks of URI mode too.
import { connect, createServer, Socket } from "node:net";
import { join } from "node:path";
import { describe, expect, it, onTestFinished, vi } from "vitest";
import { Code, TtrpcError } from "ttrpc-es";
import type { EndpointDescriptor } from "../../../src/migration/endpoint-descriptor.js";
import {
  dialWithToken,
  endpointProblem,
  handSocketToQemu,
  MigrationListener,
  migrationUri,
} from "../../../src/migration/qemu/migration-socket.js";
import { tempDir } from "../../common.js";

const TOKEN = Uint8Array.from({ length: 16 }, (_, i) => i + 1);

function descriptor(role: "listen" | "connect", address: string, transport: "unix" | "tcp" = "unix") {
  return { version: 1, transport, role, sessionNumber: 1, token: TOKEN, address } satisfies EndpointDescriptor;
}

async function listening(d: EndpointDescriptor): Promise<MigrationListener> {
  const l = await MigrationListener.bind(d);
  onTestFinished(() => l.close());
  return l;
}

/** A plain client of the listener, destroyed after the test. */
function rawClient(path: string): Socket {
  const s = connect(path);
  s.on("error", () => undefined);
  onTestFinished(() => void s.destroy());
  return s;
}

const closedSocket = (s: Socket) =>
  new Promise<void>((resolve) => (s.destroyed ? resolve() : s.once("close", () => resolve())));

describe("migrationUri and endpointProblem", () => {
  it("writes unix and tcp URIs", () => {
    expect(migrationUri(descriptor("listen", "/run/m.sock"))).toBe("unix:/run/m.sock");
    expect(migrationUri(descriptor("listen", "10.0.0.2:4444", "tcp"))).toBe("tcp:10.0.0.2:4444");
  });

  it("accepts a listening destination and a connecting source with URIs, and any role with fds", () => {
    expect(endpointProblem(descriptor("listen", "/m"), "destination", "uri")).toBeUndefined();
    expect(endpointProblem(descriptor("connect", "/m"), "source", "uri")).toBeUndefined();
    expect(endpointProblem(descriptor("listen", "/m"), "source", "fd")).toBeUndefined();
    expect(endpointProblem(descriptor("connect", "/m"), "destination", "fd")).toBeUndefined();
  });

  it.each([
    ["source", "listen"],
    ["destination", "connect"],
  ] as const)("refuses a %s that would %s with URIs", (side, role) => {
    const e = endpointProblem(descriptor(role, "/m"), side, "uri");
    expect(e).toBeInstanceOf(TtrpcError);
    expect(e?.code).toBe(Code.InvalidArgument);
    expect(e?.rawMessage).toBe(
      `protocol_info: with QEMU URIs the destination listens and the source connects (this ${side} would ${role})`,
    );
  });
});

describe("the fd-mode rendezvous", () => {
  it("accepts the dialer's token, answers once QEMU holds the socket, and hands both sockets over", async () => {
    const path = join(tempDir(), "m.sock");
    const listener = await listening(descriptor("listen", path));
    const dialed = dialWithToken(descriptor("connect", path), new AbortController().signal);
    const accepted = await listener.accept(TOKEN, new AbortController().signal);
    const fds: number[] = [];
    const getfd = async (fd: number) => void fds.push(fd);
    let dialerDone = false;
    void dialed.then(() => (dialerDone = true));
    await handSocketToQemu(accepted, getfd, true);
    expect(accepted.destroyed).toBe(true);
    const dialer = await dialed;
    expect(dialerDone).toBe(true);
    await handSocketToQemu(dialer, getfd);
    expect(dialer.destroyed).toBe(true);
    expect(fds).toHaveLength(2);
    for (const fd of fds) expect(fd).toBeGreaterThanOrEqual(0);
  });

  it("leaves the bytes after the token unread, for QEMU", async () => {
    const path = join(tempDir(), "m.sock");
    const listener = await listening(descriptor("listen", path));
    const client = rawClient(path);
    client.write(Buffer.concat([TOKEN, Buffer.from("QEVM")]));
    const accepted = await listener.accept(TOKEN, new AbortController().signal);
    onTestFinished(() => void accepted.destroy());
    expect(accepted.readableLength).toBe(4);
    expect(accepted.read(4)).toEqual(Buffer.from("QEVM"));
  });

  it("closes connections with a wrong or short token and accepts the right one after them", async () => {
    const path = join(tempDir(), "m.sock");
    const listener = await listening(descriptor("listen", path));
    const wrong = rawClient(path);
    wrong.write(Buffer.alloc(16, 9));
    const short = rawClient(path);
    short.end(TOKEN.subarray(0, 8));
    const accepting = listener.accept(TOKEN, new AbortController().signal);
    await closedSocket(wrong);
    await closedSocket(short);
    const right = rawClient(path);
    right.write(TOKEN);
    const accepted = await accepting;
    onTestFinished(() => void accepted.destroy());
    expect(accepted.remotePort).toBe(right.localPort);
  });

  it("keeps a connection that arrived before accept", async () => {
    const path = join(tempDir(), "m.sock");
    const listener = await listening(descriptor("listen", path));
    const early = rawClient(path);
    early.write(TOKEN);
    // The peer's transfer may start first: its bytes wait on the kept connection.
    await new Promise((resolve) => early.once("connect", resolve));
    const accepted = await listener.accept(TOKEN, new AbortController().signal);
    onTestFinished(() => void accepted.destroy());
    expect(accepted.destroyed).toBe(false);
  });

  it("rejects accept with the signal's reason, at once when already aborted", async () => {
    const path = join(tempDir(), "m.sock");
    const listener = await listening(descriptor("listen", path));
    const stop = new Error("cancelled");
    await expect(listener.accept(TOKEN, AbortSignal.abort(stop))).rejects.toBe(stop);
    const ac = new AbortController();
    const accepting = listener.accept(TOKEN, ac.signal);
    ac.abort(stop);
    await expect(accepting).rejects.toBe(stop);
  });

  it("closes connections not accepted when it closes", async () => {
    const path = join(tempDir(), "m.sock");
    const listener = await MigrationListener.bind(descriptor("listen", path));
    const client = rawClient(path);
    await new Promise((resolve) => client.once("connect", resolve));
    await listener.close();
    await closedSocket(client);
    expect(client.destroyed).toBe(true);
  });

  it("replaces a stale socket file when binding", async () => {
    const path = join(tempDir(), "m.sock");
    const first = await MigrationListener.bind(descriptor("listen", path));
    await first.close();
    const stale = createServer();
    await new Promise<void>((resolve) => stale.listen(path, resolve));
    // A server that died without removing its file: the path exists, nobody answers on it after close.
    await new Promise((resolve) => stale.close(resolve));
    const listener = await listening(descriptor("listen", path));
    const dialing = dialWithToken(descriptor("connect", path), new AbortController().signal);
    const accepted = await listener.accept(TOKEN, new AbortController().signal);
    await handSocketToQemu(accepted, async () => undefined, true);
    (await dialing).destroy();
    expect(accepted.destroyed).toBe(true);
  });

  it("meets over loopback TCP", async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise((resolve) => probe.close(resolve));
    const address = `127.0.0.1:${port}`;
    const listener = await listening(descriptor("listen", address, "tcp"));
    const dialing = dialWithToken(descriptor("connect", address, "tcp"), new AbortController().signal);
    const accepted = await listener.accept(TOKEN, new AbortController().signal);
    expect(accepted.localPort).toBe(port);
    await handSocketToQemu(accepted, async () => undefined, true);
    const dialer = await dialing;
    expect(dialer.remotePort).toBe(port);
    dialer.destroy();
  });
});

describe("dialWithToken", () => {
  it("dials again every 50 ms until the listener is up", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    onTestFinished(() => void vi.useRealTimers());
    const path = join(tempDir(), "m.sock");
    const dialing = dialWithToken(descriptor("connect", path), new AbortController().signal);
    // The first dial failed once the retry's timer is set (setImmediate is not faked: it lets I/O run).
    while (vi.getTimerCount() === 0) await new Promise((resolve) => setImmediate(resolve));
    expect(vi.getTimerCount()).toBe(1);
    const listener = await listening(descriptor("listen", path));
    const accepting = listener.accept(TOKEN, new AbortController().signal);
    await vi.advanceTimersByTimeAsync(50);
    const accepted = await accepting;
    await handSocketToQemu(accepted, async () => undefined, true);
    (await dialing).destroy();
  });

  it("rejects at once when aborted before dialing", async () => {
    const stop = new Error("cancelled");
    await expect(dialWithToken(descriptor("connect", "/nonexistent"), AbortSignal.abort(stop))).rejects.toBe(stop);
  });

  it("fails when the listener closes instead of answering", async () => {
    const path = join(tempDir(), "m.sock");
    const server = createServer((s) => s.once("data", () => s.destroy()));
    await new Promise<void>((resolve) => server.listen(path, resolve));
    onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
    await expect(dialWithToken(descriptor("connect", path), new AbortController().signal)).rejects.toThrow(
      "closed before the token",
    );
  });

  it("rejects with the signal's reason while waiting for the answer", async () => {
    const path = join(tempDir(), "m.sock");
    const got = new Promise<Socket>((resolve) => {
      const server = createServer((s) => s.once("data", () => resolve(s)));
      server.listen(path);
      onTestFinished(() => new Promise<void>((r) => server.close(() => r())));
    });
    const ac = new AbortController();
    const dialing = dialWithToken(descriptor("connect", path), ac.signal);
    const serverSide = await got;
    onTestFinished(() => void serverSide.destroy());
    const stop = new Error("cancelled");
    ac.abort(stop);
    await expect(dialing).rejects.toBe(stop);
  });
});

describe("handSocketToQemu", () => {
  it("refuses a socket that is not connected, destroying it", async () => {
    const s = new Socket();
    let asked = false;
    const getfd = async () => {
      asked = true;
    };
    await expect(handSocketToQemu(s, getfd)).rejects.toThrow("the migration socket is not connected");
    expect(asked).toBe(false);
    expect(s.destroyed).toBe(true);
  });

  it("destroys the socket and sends no answer when getfd fails", async () => {
    const path = join(tempDir(), "m.sock");
    const listener = await listening(descriptor("listen", path));
    const client = rawClient(path);
    client.write(TOKEN);
    const accepted = await listener.accept(TOKEN, new AbortController().signal);
    const refused = new Error("getfd refused");
    await expect(
      handSocketToQemu(
        accepted,
        async () => {
          throw refused;
        },
        true,
      ),
    ).rejects.toBe(refused);
    expect(accepted.destroyed).toBe(true);
    const received: Buffer[] = [];
    client.on("data", (b: Buffer) => received.push(b));
    await closedSocket(client);
    expect(Buffer.concat(received).length).toBe(0);
  });
});
