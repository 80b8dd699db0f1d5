import { Server as NetServer, Socket } from "node:net";
import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { adoptForDirectReads, DirectReads } from "../../src/direct-reads.js";
import { tempDir } from "../common.js";
import { until } from "../hostile/helpers.js";

// Drives `onread` in the order Node does: a buffer is asked for before each
// read (the first when the socket connects), the callback follows the read.
function read(reads: DirectReads, bytes: number[]): void {
  const target = reads.onread.buffer();
  target.set(bytes);
  reads.onread.callback(bytes.length, target);
}

describe("DirectReads", () => {
  it("holds what is read before a reader is bound and hands it over in order, then reads into the reader", () => {
    const reads = new DirectReads();
    read(reads, [1, 2]);
    read(reads, [3]);
    const early: number[][] = [];
    const target = new Uint8Array(4);
    const filled: number[] = [];
    reads.bind({ target: () => target, filled: (n) => filled.push(n) }, (c) => early.push([...c]));
    expect(early).toEqual([[1, 2], [3]]);
    read(reads, [4, 5, 6]);
    expect(filled).toEqual([3]);
    expect([...target.subarray(0, 3)]).toEqual([4, 5, 6]);
  });

  it("a read into the buffer handed out before bind still goes to the early handler", () => {
    const reads = new DirectReads();
    const pending = reads.onread.buffer(); // the socket holds this one for its next read
    const early: number[][] = [];
    const filled: number[] = [];
    reads.bind({ target: () => new Uint8Array(8), filled: (n) => filled.push(n) }, (c) => early.push([...c]));
    pending.set([7, 8]);
    reads.onread.callback(2, pending);
    expect(early).toEqual([[7, 8]]);
    expect(filled).toEqual([]);
  });
});

describe("adoptForDirectReads (real unix sockets)", () => {
  async function pair(pauseOnConnect: boolean): Promise<{ net: NetServer; accepted: Socket; client: Socket }> {
    const net = new NetServer({ pauseOnConnect });
    const path = join(tempDir(), "adopt.sock");
    await new Promise<void>((r) => net.listen(path, r));
    const accepted = new Promise<Socket>((r) => net.once("connection", r));
    const client = new Socket();
    onTestFinished(() => {
      client.destroy();
      net.close();
    });
    await new Promise<void>((r) => client.connect({ path }, r));
    return { net, accepted: await accepted, client };
  }

  const connections = (net: NetServer) =>
    new Promise<number>((resolve, reject) => net.getConnections((e, n) => (e ? reject(e) : resolve(n))));

  it("moves the connection to a socket that reads into the buffers its reader names, and the count of connections with it", async () => {
    const { net, accepted, client } = await pair(true);
    const reads = new DirectReads();
    const socket = adoptForDirectReads(accepted, reads.onread)!;
    expect(socket).toBeDefined();
    expect(accepted.destroyed).toBe(true);
    const target = new Uint8Array(1 << 20);
    let filled = 0;
    // The socket's first read lands in the buffer it took when it was made: handed over as early.
    const early: Buffer[] = [];
    reads.bind({ target: () => target.subarray(filled), filled: (n) => (filled += n) }, (c) =>
      early.push(Buffer.from(c)),
    );
    const sent = Buffer.alloc(300_000, 0x5a);
    for (let i = 0; i < sent.length; i += 4096) sent[i] = i & 0xff;
    client.write(sent);
    const earlyBytes = () => early.reduce((n, c) => n + c.length, 0);
    await until(() => earlyBytes() + filled === sent.length, "every byte");
    expect(Buffer.concat([...early, target.subarray(0, filled)]).equals(sent)).toBe(true);
    expect(filled).toBeGreaterThan(sent.length / 2);
    // Written back through the new socket: the connection is whole.
    const echoed = new Promise<Buffer>((r) => client.once("data", r));
    socket.write("pong");
    expect((await echoed).toString()).toBe("pong");
    expect(await connections(net)).toBe(1);
    const closed = new Promise<void>((r) => net.close(() => r()));
    socket.destroy();
    // net.Server's close completes only once its count of connections is 0.
    await closed;
    expect(await connections(net)).toBe(0);
  });

  it("leaves a socket that has read bytes already as it is", async () => {
    const { accepted, client } = await pair(false);
    const got = new Promise<Buffer>((r) => accepted.once("data", r));
    client.write("early");
    expect((await got).toString()).toBe("early");
    expect(adoptForDirectReads(accepted, new DirectReads().onread)).toBeUndefined();
    expect(accepted.destroyed).toBe(false);
    const echoed = new Promise<Buffer>((r) => client.once("data", r));
    accepted.write("still mine");
    expect((await echoed).toString()).toBe("still mine");
  });
});
