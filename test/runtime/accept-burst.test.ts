// A burst of connections larger than Node's default accept queue (511), made
// while the server's event loop cannot accept: each connect(2) below runs
// synchronously inside the loop, so only the kernel's queue holds them. Go
// listens with somaxconn and refuses none; so must we.
import { writeFileSync } from "node:fs";
import { Socket } from "node:net";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createServer, type ListenOptions } from "ttrpc-es";
import { listenBacklog, readSomaxconn } from "../../src/listen-backlog.js";
import { Interop, interopImpl, tempDir } from "../common.js";

const BURST = 3000;

interface Burst {
  connected: number;
  refused: string[];
  served: number;
}

/** Opens `BURST` unix connections in one synchronous loop, then counts how each ended. */
async function burst(options: ListenOptions): Promise<Burst> {
  const server = createServer().register(Interop, interopImpl);
  const address = await server.listen(join(tempDir(), "burst.sock"), options);
  const path = address.replace(/^unix:/, "");
  const sockets: Socket[] = [];
  const outcomes: Promise<string | undefined>[] = [];
  for (let i = 0; i < BURST; i++) {
    const s = new Socket();
    sockets.push(s);
    outcomes.push(
      new Promise((resolve) => {
        s.once("connect", () => resolve(undefined));
        s.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      }),
    );
    s.connect({ path });
  }
  const ended = await Promise.all(outcomes);
  const refused = ended.filter((e): e is string => e !== undefined);
  // Every queued connection reaches the server: wait for the count to say so.
  const expected = BURST - refused.length;
  while (server.connectionCount < expected) await new Promise((r) => setImmediate(r));
  const served = server.connectionCount;
  for (const s of sockets) s.destroy();
  await server.close();
  return { connected: expected, refused, served };
}

describe("accept bursts", () => {
  it(`refuses none of ${BURST} connections opened at once (backlog: the kernel's somaxconn)`, async () => {
    expect(readSomaxconn()).toBeGreaterThanOrEqual(BURST); // the premise: this kernel grants the queue
    const r = await burst({});
    expect(r.refused).toEqual([]);
    expect(r.connected).toBe(BURST);
    expect(r.served).toBe(BURST);
  });

  it("a short backlog option is honoured: the same burst is refused in part (EAGAIN)", async () => {
    const r = await burst({ backlog: 64 });
    expect(r.refused.length).toBeGreaterThan(0);
    expect(new Set(r.refused)).toEqual(new Set(["EAGAIN"]));
    expect(r.served).toBe(r.connected);
  });
});

describe("listenBacklog", () => {
  it("reads somaxconn, caps it, and falls back to Node's 511", () => {
    const dir = tempDir();
    const file = (text: string) => {
      const p = join(dir, `s${Math.random()}`);
      writeFileSync(p, text);
      return p;
    };
    expect(readSomaxconn(file("4096\n"))).toBe(4096);
    expect(readSomaxconn(file("1000000"))).toBe(65535);
    expect(readSomaxconn(file("nonsense"))).toBe(511);
    expect(readSomaxconn(file("0"))).toBe(511);
    expect(readSomaxconn(join(dir, "missing"))).toBe(511);
  });

  it("takes an explicit backlog and refuses a bad one", () => {
    expect(listenBacklog(7)).toBe(7);
    expect(listenBacklog(1)).toBe(1);
    expect(() => listenBacklog(-1)).toThrow("backlog must be a positive integer, got -1");
    expect(listenBacklog()).toBe(readSomaxconn());
    expect(() => listenBacklog(0)).toThrow(RangeError);
    expect(() => listenBacklog(1.5)).toThrow(RangeError);
  });
});
