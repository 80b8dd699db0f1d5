// Peer credentials read with SO_PEERCRED through koffi, against real processes
// of another user: the tests run as root (as CI does) and start the other
// side with `runuser -u nobody`. Servers listen on abstract sockets, which
// any user can reach: the case Go's UnixSocketRequireSameUser is for.
import { randomUUID } from "node:crypto";
import { PassThrough, type Duplex } from "node:stream";
import { describe, expect, onTestFinished, test } from "vitest";
import {
  Code,
  TtrpcError,
  createServer,
  dial,
  peerCredentials,
  requireRoot,
  requireSameUser,
  requireUidGid,
  type CredentialsCheck,
  type PeerCredentials,
} from "ttrpc-es";
import { checkLeaksAfterAll } from "../leak-check.js";
import { startPeer } from "./peer-process.js";

const NOBODY = "nobody";

/** A server on a fresh abstract socket whose authorize runs `check`; records what it read and refused. */
async function serve(check: CredentialsCheck) {
  const seen: PeerCredentials[] = [];
  const refused: unknown[] = [];
  const server = createServer({
    async authorize(socket: Duplex, peer) {
      seen.push(await peerCredentials(socket));
      await check(socket, peer);
    },
    onConnectionError: (e) => refused.push(e),
  });
  const name = `ttrpc-es-peercred-${randomUUID()}`;
  await server.listen(`unix-abstract:${name}`);
  onTestFinished(() => server.close());
  return { name, seen, refused };
}

/** Runs the client peer against `name` and returns its connect and close events. */
async function runClient(name: string, user?: string) {
  const peer = startPeer(["client", `@${name}`], user);
  const connected = await peer.next((e) => e.connected === true);
  const closed = await peer.next((e) => e.closed === true);
  await peer.stop();
  return { connected, closed };
}

function expectCode(e: unknown, code: Code): void {
  expect(e).toBeInstanceOf(TtrpcError);
  expect((e as TtrpcError).code).toBe(code);
}

describe("server side: authorize helpers", () => {
  test("requireSameUser() refuses a client of another user before answering anything", async () => {
    const s = await serve(requireSameUser());
    const { connected, closed } = await runClient(s.name, NOBODY);
    expect(connected.uid).toBe(65534);
    expect(closed.answeredBytes).toBe(0);
    expect(s.seen).toEqual([{ pid: connected.pid, uid: 65534, gid: 65534 }]);
    expect(s.refused).toHaveLength(1);
    expectCode(s.refused[0], Code.PermissionDenied);
  });

  test("requireSameUser() accepts a client of the same user, and the credentials carry its real pid", async () => {
    const s = await serve(requireSameUser());
    const { connected, closed } = await runClient(s.name);
    expect(connected.pid).not.toBe(process.pid);
    expect(s.seen).toEqual([{ pid: connected.pid, uid: process.geteuid!(), gid: process.getegid!() }]);
    expect(s.refused).toEqual([]);
    expect(closed.answeredBytes).toBeGreaterThanOrEqual(10); // the UNIMPLEMENTED answer
  });

  test("requireUidGid of another uid refuses; of the client's own uid accepts", async () => {
    const other = await serve(requireUidGid(4242, -1));
    expect((await runClient(other.name, NOBODY)).closed.answeredBytes).toBe(0);
    expectCode(other.refused[0], Code.PermissionDenied);

    const own = await serve(requireUidGid(65534, -1));
    const { connected, closed } = await runClient(own.name, NOBODY);
    expect(own.refused).toEqual([]);
    expect(own.seen[0]?.pid).toBe(connected.pid);
    expect(closed.answeredBytes).toBeGreaterThanOrEqual(10);
  });

  test("requireUidGid checks the gid too; requireRoot() refuses nobody", async () => {
    const gid = await serve(requireUidGid(-1, 0));
    await runClient(gid.name, NOBODY);
    expectCode(gid.refused[0], Code.PermissionDenied);

    const root = await serve(requireRoot());
    await runClient(root.name, NOBODY);
    expectCode(root.refused[0], Code.PermissionDenied);
  });
});

describe("client side: the server's credentials", () => {
  test("a client reads the pid and uid of the server it dialed, and can refuse it", async () => {
    const name = `ttrpc-es-peercred-${randomUUID()}`;
    const server = startPeer(["server", `@${name}`], NOBODY);
    const listening = await server.next((e) => e.listening === true);
    const socket = await dial(`unix-abstract:${name}`);
    onTestFinished(() => {
      socket.destroy();
    });
    expect(await peerCredentials(socket)).toEqual({ pid: listening.pid, uid: 65534, gid: 65534 });
    await expect(requireSameUser()(socket)).rejects.toSatisfy(
      (e) => e instanceof TtrpcError && e.code === Code.PermissionDenied,
    );
    await expect(requireUidGid(65534, 65534)(socket)).resolves.toBeUndefined();
    // -1 accepts any uid, or any gid.
    await expect(requireUidGid(-1, 65534)(socket)).resolves.toBeUndefined();
    await expect(requireUidGid(65534, -1)(socket)).resolves.toBeUndefined();
    await expect(requireUidGid(0, -1)(socket)).rejects.toSatisfy(
      (e) =>
        e instanceof TtrpcError &&
        e.rawMessage ===
          "ttrpc: invalid credentials: operation not permitted " +
            `(peer pid ${listening.pid} uid 65534 gid 65534; required uid 0 gid -1)`,
    );
    // Read once per socket: the same answer every time.
    expect(peerCredentials(socket)).toBe(peerCredentials(socket));
  });
});

describe("sockets without unix credentials refuse", () => {
  test("a TCP connection: SO_PEERCRED would say 'nobody', so the read refuses instead", async () => {
    const s = createServer({ authorize: requireUidGid(-1, -1), onConnectionError: (e) => refused.push(e) });
    const refused: unknown[] = [];
    const address = await s.listen("tcp:127.0.0.1:0");
    onTestFinished(() => s.close());
    const socket = await dial(address);
    await expect(peerCredentials(socket)).rejects.toSatisfy(
      (e) => e instanceof TtrpcError && e.code === Code.FailedPrecondition && /not a unix socket/.test(e.message),
    );
    await new Promise<void>((resolve) => socket.on("close", () => resolve()).resume());
    expect(refused).toHaveLength(1);
    expectCode(refused[0], Code.FailedPrecondition);
  });

  test("a Duplex that is not a socket, and a failed read is tried again", async () => {
    await expect(requireSameUser()(new PassThrough())).rejects.toSatisfy(
      (e) => e instanceof TtrpcError && e.code === Code.FailedPrecondition,
    );
    const stream = new PassThrough();
    const first = peerCredentials(stream);
    await expect(first).rejects.toSatisfy(
      (e) =>
        e instanceof TtrpcError &&
        e.rawMessage === "ttrpc: cannot read peer credentials: the stream is not a connected socket",
    );
    // Only an answer is kept: the socket may have connected since.
    const second = peerCredentials(stream);
    expect(second).not.toBe(first);
    await expect(second).rejects.toBeInstanceOf(TtrpcError);
  });

  test("off Linux (process.platform made to say darwin for this one read)", async () => {
    const platform = Object.getOwnPropertyDescriptor(process, "platform")!;
    Object.defineProperty(process, "platform", { ...platform, value: "darwin" });
    let read: Promise<void>;
    try {
      read = requireSameUser()(new PassThrough());
    } finally {
      Object.defineProperty(process, "platform", platform);
    }
    await expect(read).rejects.toSatisfy(
      (e) => e instanceof TtrpcError && e.code === Code.FailedPrecondition && /Linux only/.test(e.message),
    );
  });
});

checkLeaksAfterAll();
