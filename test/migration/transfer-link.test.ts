// The listening side of the memory transfer accepts only connections whose
// hello proves the migration's token and session number and comes from the
// other side: anything else is closed unanswered, and the right peer is
// still accepted after it. Real unix sockets; the impostors speak the real
// hello (wire-protocol.ts's encoder), one field wrong each.
import { writeFileSync } from "node:fs";
import { createServer, connect as dial, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Code } from "../../src/code.js";
import { type EndpointDescriptor, parseEndpointDescriptor } from "../../src/migration/endpoint-descriptor.js";
import { createEndpointPair } from "../../src/migration/simulated/index.js";
import { acceptPeer, bindListener, closeListener, connectPeer } from "../../src/migration/simulated/transfer-link.js";
import {
  decodeHello,
  decodePassAck,
  encodeFrame,
  encodeHello,
  encodeHelloAck,
  encodePassAck,
  type Hello,
  MessageType,
  WireError,
} from "../../src/migration/simulated/wire-protocol.js";
import { TtrpcError } from "../../src/ttrpc-error.js";
import { fakeTimeouts, rejection, tempDir } from "../common.js";

const MAX_PAYLOAD = 1 << 20;

/** Sends `hello` on a fresh connection; resolves with the bytes the listener answered before it closed. */
function impostor(path: string, hello: Hello): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket: Socket = dial(path, () => socket.write(encodeHello(hello)));
    const got: Buffer[] = [];
    socket.on("data", (c: Buffer) => got.push(c));
    socket.on("error", reject);
    socket.on("close", () => resolve(Buffer.concat(got)));
  });
}

describe("the memory-transfer listener", () => {
  it("closes, unanswered, a hello with a wrong token, another session or its own side, and accepts the peer", async () => {
    const path = join(tempDir(), "memory.sock");
    const pair = createEndpointPair({ transport: "unix", address: path, sessionNumber: 77 });
    const listen: EndpointDescriptor = parseEndpointDescriptor(pair.destination);
    const server = await bindListener(listen);
    const signal = new AbortController().signal;
    const accepted = acceptPeer(server, listen, "destination", signal, MAX_PAYLOAD, 1);
    const right: Hello = { token: pair.token, sessionNumber: 77, sender: "source", channel: 0, channels: 1 };
    const wrongToken = Uint8Array.from(pair.token, (b) => b ^ 1);
    const answers = await Promise.all([
      impostor(path, { ...right, token: wrongToken }),
      impostor(path, { ...right, sessionNumber: 78 }),
      impostor(path, { ...right, sender: "destination" }),
      impostor(path, { ...right, channel: 1 }),
    ]);
    expect(answers.map((a) => a.length)).toEqual([0, 0, 0, 0]);
    const dialed = await connectPeer(parseEndpointDescriptor(pair.source), "source", signal, MAX_PAYLOAD, 1);
    const links = await accepted;
    expect(links).toHaveLength(1);
    for (const l of [...links, ...dialed]) l.socket.destroy();
  });
});

// ---------------------------------------------------------------------------
// More of the listener and the connector. The stand-in listener below is a
// plain net server answering each hello as a test needs (a real acceptPeer
// cannot be made to answer wrongly); everything else is the real code.

const sockets: Socket[] = [];
const servers: Server[] = [];

afterEach(async () => {
  vi.useRealTimers();
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/** A fresh pair of descriptors on a unix path: the destination listens. */
function endpoints(sessionNumber = 5) {
  const path = join(tempDir(), "memory.sock");
  const pair = createEndpointPair({ transport: "unix", address: path, sessionNumber });
  return {
    path,
    token: pair.token,
    listen: parseEndpointDescriptor(pair.destination),
    connect: parseEndpointDescriptor(pair.source),
  };
}

/** A raw connection to `path` that sends `bytes` on connect. */
async function rawClient(path: string, bytes?: Buffer): Promise<Socket> {
  const socket = dial(path);
  sockets.push(socket);
  socket.on("error", () => {});
  await new Promise((resolve) => socket.once("connect", resolve));
  if (bytes !== undefined) socket.write(bytes);
  return socket;
}

/** Resolves once `socket` closed, with whatever came on it. */
function closed(socket: Socket): Promise<Buffer> {
  const got: Buffer[] = [];
  socket.on("data", (c: Buffer) => got.push(c));
  return new Promise((resolve) => socket.once("close", () => resolve(Buffer.concat(got))));
}

/** The first `n` bytes that come on `socket`. */
function firstBytes(socket: Socket, n: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const got: Buffer[] = [];
    const onData = (c: Buffer) => {
      got.push(c);
      const all = Buffer.concat(got);
      if (all.length < n) return;
      socket.off("data", onData);
      resolve(all.subarray(0, n));
    };
    socket.on("data", onData);
  });
}

/**
 * Fresh endpoints, their listener bound, and acceptPeer on it as `side`
 * (`channels` as given); `c` aborts it.
 */
async function listening(side: "source" | "destination" = "destination", channels?: number) {
  const e = endpoints();
  const server = await bindListener(e.listen);
  const c = new AbortController();
  return { ...e, server, c, accepting: acceptPeer(server, e.listen, side, c.signal, MAX_PAYLOAD, channels) };
}

/** The next connection `server` gets (after the listeners it has run). */
const nextConnection = (server: Server) => new Promise<Socket>((resolve) => server.once("connection", resolve));

/**
 * The stand-in listener: reads each connection's hello and hands it, with the
 * connection, to `answer`. Resolves with the server once it listens.
 */
async function standIn(path: string, answer: (hello: Hello, socket: Socket) => void): Promise<Server> {
  const server = createServer((socket) => {
    sockets.push(socket);
    socket.on("error", () => {});
    void firstBytes(socket, HELLO_FRAME).then((b) => answer(decodeHello(b.subarray(6)), socket));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return server;
}

/**
 * Resolves once a retry timer is set: the dial before it failed. Polled once
 * per event-loop turn, not with vi.waitFor, which would move the fake clock.
 */
async function retryTimerSet(): Promise<void> {
  for (let turn = 0; vi.getTimerCount() === 0; turn++) {
    if (turn === 10_000) throw new Error("no retry timer after 10000 event-loop turns");
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** A hello frame's length: the header and 23 bytes. */
const HELLO_FRAME = 6 + 23;
const ack = (sender: "source" | "destination", channels: number) => encodeHelloAck({ sender, channels });

describe("binding the memory-transfer listener", () => {
  it("refuses a tcp address that is not HOST:PORT as INVALID_ARGUMENT", async () => {
    const d: EndpointDescriptor = { ...endpoints().listen, transport: "tcp", address: "nowhere" };
    const err = await rejection(bindListener(d), TtrpcError);
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe('protocol_info: tcp address "nowhere" is not HOST:PORT');
  });

  it("refuses an address in use as INVALID_ARGUMENT naming the system's error", async () => {
    const { path, listen } = endpoints();
    const first = await bindListener(listen);
    servers.push(first);
    const err = await rejection(bindListener(listen), TtrpcError);
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.rawMessage).toBe(`protocol_info: cannot listen on unix ${path}: EADDRINUSE`);
    expect((err.cause as NodeJS.ErrnoException).code).toBe("EADDRINUSE");
  });

  it("closeListener closes the connections that came before any acceptPeer", async () => {
    const { path, listen } = endpoints();
    const server = await bindListener(listen);
    const arrived = nextConnection(server);
    const early = await rawClient(path);
    await arrived;
    const gone = closed(early);
    await closeListener(server);
    expect((await gone).length).toBe(0);
  });
});

describe("accepting the peer's channels", () => {
  const hello = (token: Uint8Array, over: Partial<Hello> = {}): Buffer =>
    encodeHello({ token, sessionNumber: 5, sender: "source", channel: 0, channels: 1, ...over });

  it("accepts a connection whose hello came before acceptPeer ran", async () => {
    const { path, token, listen } = endpoints();
    const server = await bindListener(listen);
    const arrived = nextConnection(server);
    const early = await rawClient(path, hello(token));
    await arrived;
    const answer = firstBytes(early, 8);
    const links = await acceptPeer(server, listen, "destination", new AbortController().signal, MAX_PAYLOAD);
    expect(links).toHaveLength(1);
    expect(await answer).toEqual(ack("destination", 1));
    for (const l of links) l.socket.destroy();
  });

  it("rejects at once with the reason when already aborted, closing the connections that waited", async () => {
    const { path, token, listen } = endpoints();
    const server = await bindListener(listen);
    const arrived = nextConnection(server);
    const early = await rawClient(path, hello(token));
    await arrived;
    const gone = closed(early);
    const reason = new Error("cancelled");
    await expect(acceptPeer(server, listen, "destination", AbortSignal.abort(reason), MAX_PAYLOAD)).rejects.toBe(
      reason,
    );
    expect((await gone).length).toBe(0);
  });

  it("rejects with a WireError when aborted with a reason that is not an Error", async () => {
    const { c, accepting } = await listening();
    c.abort("stop");
    const err = await rejection(accepting, WireError);
    expect(err.message).toBe("aborted");
  });

  it("learns the count from the source's hello (up to 16), and closes what it accepted when aborted", async () => {
    const { path, token, c, accepting } = await listening();
    const client = await rawClient(path, hello(token, { channels: 16 }));
    expect(await firstBytes(client, 8)).toEqual(ack("destination", 16));
    const gone = closed(client);
    const reason = new Error("cancelled");
    c.abort(reason);
    await expect(accepting).rejects.toBe(reason);
    await gone;
  });

  it("closes, unanswered, a hello asking for more than 16 channels", async () => {
    const { path, token, c, accepting } = await listening();
    const client = await rawClient(path, hello(token, { channels: 17 }));
    expect((await closed(client)).length).toBe(0);
    c.abort(new Error("done"));
    await expect(accepting).rejects.toThrow("done");
  });

  it("closes, unanswered, a frame that is not a hello even with a hello's payload", async () => {
    const { path, token, c, accepting } = await listening();
    const notHello = hello(token);
    notHello[1] = MessageType.Ready;
    const client = await rawClient(path, notHello);
    expect((await closed(client)).length).toBe(0);
    c.abort(new Error("done"));
    await expect(accepting).rejects.toThrow("done");
  });

  it("accepts a lone channel 0 from a source that does not say the count, and refuses another channel then", async () => {
    const { path, token, accepting } = await listening();
    const other = await rawClient(path, hello(token, { channel: 1, channels: 0 }));
    expect((await closed(other)).length).toBe(0);
    const client = await rawClient(path, hello(token, { channels: 0 }));
    const answer = firstBytes(client, 8);
    const links = await accepting;
    expect(links).toHaveLength(1);
    expect(await answer).toEqual(ack("destination", 0));
    for (const l of links) l.socket.destroy();
  });

  it("on the source, takes the destination's channels in any order, by number, refusing a wrong count or a taken channel", async () => {
    const { path, token, accepting } = await listening("source", 2);
    const fromDestination = (over: Partial<Hello>) => hello(token, { sender: "destination", channels: 0, ...over });
    // Each channel's hello is followed by a frame naming the channel, for the listener to read.
    const tagged = (channel: number) => Buffer.concat([fromDestination({ channel }), encodePassAck(channel)]);
    const wrongCount = await rawClient(path, fromDestination({ channel: 1, channels: 3 }));
    expect((await closed(wrongCount)).length).toBe(0);
    const one = await rawClient(path, tagged(1));
    expect(await firstBytes(one, 8)).toEqual(ack("source", 2));
    const again = await rawClient(path, fromDestination({ channel: 1 }));
    expect((await closed(again)).length).toBe(0);
    await rawClient(path, tagged(0));
    const links = await accepting;
    const tags = await Promise.all(links.map(async (l) => decodePassAck((await l.reader.next()).payload)));
    expect(tags).toEqual([0, 1]);
    for (const l of links) l.socket.destroy();
  });

  it("when aborted with only a later channel accepted, rejects with the reason and closes that channel", async () => {
    const { path, token, c, accepting } = await listening("source", 2);
    const one = await rawClient(path, hello(token, { sender: "destination", channel: 1, channels: 0 }));
    await firstBytes(one, 8);
    const gone = closed(one);
    const reason = new Error("cancelled");
    c.abort(reason);
    await expect(accepting).rejects.toBe(reason);
    await gone;
  });

  it("closes a connection that never said hello once the channels are complete", async () => {
    // Its ten seconds to say hello never run out here: the close is acceptPeer's.
    fakeTimeouts();
    const { path, token, server, accepting } = await listening();
    const taken = nextConnection(server);
    const silent = await rawClient(path);
    await taken;
    const gone = closed(silent);
    await rawClient(path, hello(token));
    const links = await accepting;
    await gone;
    for (const l of links) l.socket.destroy();
  });

  it("gives a connection ten seconds to say hello", async () => {
    fakeTimeouts();
    const { path, server, c, accepting } = await listening();
    const taken = nextConnection(server);
    const silent = await rawClient(path);
    await taken;
    const gone = closed(silent);
    vi.advanceTimersByTime(9_999);
    expect(silent.destroyed).toBe(false);
    vi.advanceTimersByTime(1);
    await gone;
    c.abort(new Error("done"));
    await expect(accepting).rejects.toThrow("done");
  });

  it("closes a connection that sends a malformed frame, and stops its hello timer", async () => {
    fakeTimeouts();
    const { path, c, accepting } = await listening();
    const client = await rawClient(path, Buffer.from([99, 1, 0, 0, 0, 0]));
    await closed(client);
    expect(vi.getTimerCount()).toBe(0);
    c.abort(new Error("done"));
    await expect(accepting).rejects.toThrow("done");
  });
});

describe("dialing the peer's listener", () => {
  it("retries while nothing listens, 5 ms at first, doubling up to 200 ms, and connects once the listener is there", async () => {
    fakeTimeouts();
    const { listen, connect } = endpoints();
    const signal = new AbortController().signal;
    const dialing = connectPeer(connect, "source", signal, MAX_PAYLOAD, 1);
    for (const delay of [5, 10, 20, 40, 80, 160, 200, 200]) {
      await retryTimerSet();
      vi.advanceTimersByTime(delay - 1);
      expect(vi.getTimerCount()).toBe(1);
      vi.advanceTimersByTime(1);
      // The wait is over: the next dial is under way, no timer yet.
      expect(vi.getTimerCount()).toBe(0);
    }
    await retryTimerSet();
    const server = await bindListener(listen);
    const accepting = acceptPeer(server, listen, "destination", signal, MAX_PAYLOAD);
    vi.advanceTimersByTime(200);
    const [dialed, accepted] = await Promise.all([dialing, accepting]);
    expect(dialed).toHaveLength(1);
    expect(accepted).toHaveLength(1);
    for (const l of [...dialed, ...accepted]) l.socket.destroy();
  });

  it("retries a refused TCP connection, and stops waiting when aborted", async () => {
    fakeTimeouts();
    // A port nothing listens on: bound, then closed.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise((resolve) => probe.close(resolve));
    const d: EndpointDescriptor = { ...endpoints().connect, transport: "tcp", address: `127.0.0.1:${port}` };
    const c = new AbortController();
    const dialing = connectPeer(d, "source", c.signal, MAX_PAYLOAD, 1);
    await retryTimerSet();
    const reason = new Error("cancelled");
    c.abort(reason);
    await expect(dialing).rejects.toBe(reason);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("rejects at once when already aborted: with the reason, or a WireError when it is not an Error", async () => {
    const { connect } = endpoints();
    const reason = new Error("cancelled");
    await expect(connectPeer(connect, "source", AbortSignal.abort(reason), MAX_PAYLOAD, 1)).rejects.toBe(reason);
    const err = await rejection(connectPeer(connect, "source", AbortSignal.abort("stop"), MAX_PAYLOAD, 1), WireError);
    expect(err.message).toBe("aborted");
  });

  it("gives up on an error other than a missing or refusing listener, naming it", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, "file"), "");
    const path = join(dir, "file", "memory.sock");
    const d: EndpointDescriptor = { ...endpoints().connect, address: path };
    const err = await rejection(connectPeer(d, "source", new AbortController().signal, MAX_PAYLOAD, 1), WireError);
    expect(err.message).toBe(`cannot connect to unix ${path}: ENOTDIR`);
  });

  it("stops dialing when aborted while the connection is being made", async () => {
    const { path, connect } = endpoints();
    const server = await standIn(path, () => {});
    // The kernel completes a unix connect at once: the listener sees the connection, then its close.
    const arrived = nextConnection(server);
    const c = new AbortController();
    const dialing = connectPeer(connect, "source", c.signal, MAX_PAYLOAD, 1);
    const reason = new Error("cancelled");
    c.abort(reason);
    // The caller's reason, as when aborted at any other stage.
    await expect(dialing).rejects.toBe(reason);
    expect((await closed(await arrived)).length).toBe(0);
  });

  it("refuses an answer that is not an acknowledgement, closing the connection", async () => {
    const { path, connect } = endpoints();
    const answered: Promise<Buffer>[] = [];
    await standIn(path, (_h, socket) => {
      answered.push(closed(socket));
      // An acknowledgement's payload in another frame type.
      socket.write(encodeFrame(MessageType.Ready, Buffer.from([2, 1])));
    });
    const err = await rejection(
      connectPeer(connect, "source", new AbortController().signal, MAX_PAYLOAD, 1),
      WireError,
    );
    expect(err.message).toBe(
      "the listener refused the connection (wrong token or session?): memory stream: the peer did not acknowledge the hello",
    );
    await answered[0];
  });

  it("refuses an acknowledgement from its own side", async () => {
    const { path, connect } = endpoints();
    await standIn(path, (_h, socket) => socket.write(ack("source", 1)));
    await expect(connectPeer(connect, "source", new AbortController().signal, MAX_PAYLOAD, 1)).rejects.toBeInstanceOf(
      WireError,
    );
  });

  it("fails when the listener closes without an answer", async () => {
    const { path, connect } = endpoints();
    await standIn(path, (_h, socket) => socket.destroy());
    const err = await rejection(
      connectPeer(connect, "source", new AbortController().signal, MAX_PAYLOAD, 1),
      WireError,
    );
    expect(err.message).toBe(
      "the listener refused the connection (wrong token or session?): memory-transfer connection closed by the peer",
    );
  });

  it("rejects with the reason when aborted while waiting for the answer, closing the connection", async () => {
    const { path, connect } = endpoints();
    const c = new AbortController();
    const reason = new Error("cancelled");
    let gone: Promise<Buffer> | undefined;
    await standIn(path, (_h, socket) => {
      gone = closed(socket);
      c.abort(reason);
    });
    await expect(connectPeer(connect, "source", c.signal, MAX_PAYLOAD, 1)).rejects.toBe(reason);
    await gone;
  });

  it("keeps its channels open when the signal is aborted after they are made", async () => {
    const { connect, accepting } = await listening();
    const c = new AbortController();
    const dialed = await connectPeer(connect, "source", c.signal, MAX_PAYLOAD, 1);
    const accepted = await accepting;
    c.abort(new Error("late"));
    expect(dialed[0]!.socket.destroyed).toBe(false);
    for (const l of [...dialed, ...accepted]) l.socket.destroy();
  });

  it("opens up to 16 channels", async () => {
    const { connect, accepting } = await listening();
    const signal = new AbortController().signal;
    const [dialed, accepted] = await Promise.all([connectPeer(connect, "source", signal, MAX_PAYLOAD, 16), accepting]);
    expect([dialed.length, accepted.length]).toEqual([16, 16]);
    for (const l of [...dialed, ...accepted]) l.socket.destroy();
  });

  for (const count of [0, 17]) {
    it(`refuses a source that asks for ${count} channels, closing the first`, async () => {
      const { path, connect } = endpoints();
      const answered: Promise<Buffer>[] = [];
      await standIn(path, (_h, socket) => {
        answered.push(closed(socket));
        socket.write(ack("source", count));
      });
      const err = await rejection(
        connectPeer(connect, "destination", new AbortController().signal, MAX_PAYLOAD),
        WireError,
      );
      expect(err.message).toBe(`memory stream: the source asked for ${count} channels (1 … 16)`);
      await answered[0];
    });
  }

  it("closes every channel when a later one is refused", async () => {
    const { path, connect } = endpoints();
    const first: Promise<Buffer>[] = [];
    await standIn(path, (h, socket) => {
      if (h.channel !== 0) return socket.destroy();
      first.push(closed(socket));
      socket.write(ack("source", 2));
    });
    await expect(connectPeer(connect, "destination", new AbortController().signal, MAX_PAYLOAD)).rejects.toBeInstanceOf(
      WireError,
    );
    await first[0];
  });
});
