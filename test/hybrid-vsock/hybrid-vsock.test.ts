// Hybrid vsock (hvsock:PATH:PORT, hvsock-listen:PATH:PORT) against a VMM
// stand-in that speaks the handshake as Firecracker's docs/vsock.md
// describes it. The stand-in is the one mock here (no Firecracker or Cloud
// Hypervisor in Debian); the ttrpc server behind it and the client in front
// are the real runtime on real unix sockets. Timeouts are small configured
// ones; no test waits for time to pass.
import { statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it, onTestFinished, vi } from "vitest";
import { Code, type Server, connect, createClient, createServer, dial, formatAddress, parseAddress } from "ttrpc-es";
import { Interop, drain, fakeTimeouts, interopImpl, tempDir } from "../common.js";
import { type StandInOptions, VmmStandIn } from "./vmm-stand-in.js";

const AGENT_PORT = 1024; // where the Kata agent listens

/** A VMM stand-in in a fresh directory, with a ttrpc server as the guest's agent on AGENT_PORT. */
async function vmmWithAgent(options: StandInOptions = {}) {
  const dir = tempDir();
  const agent = createServer().register(Interop, interopImpl);
  const agentSocket = join(dir, "guest-agent.sock");
  await agent.listen(agentSocket);
  const vmm = await VmmStandIn.start(join(dir, "fc.vsock"), options);
  vmm.guestListen(AGENT_PORT, agentSocket);
  onTestFinished(async () => {
    await vmm.close();
    await agent.close();
  });
  return { vmm, dir };
}

/** Event-loop turns (setImmediate, never faked here) until `done()` holds. */
async function turnsUntil(done: () => boolean): Promise<void> {
  while (!done()) await new Promise<void>((resolve) => setImmediate(resolve));
}

async function connected(address: string, options: Parameters<typeof connect>[1] = {}) {
  const client = await connect(address, options);
  onTestFinished(() => client.close());
  return client;
}

describe("addresses", () => {
  it("hvsock:PATH:PORT and Kata's hvsock://PATH:PORT; hvsock-listen is the unix socket PATH_PORT", () => {
    expect(parseAddress("hvsock:/run/vc/fc.vsock:1024")).toEqual({
      kind: "hvsock",
      path: "/run/vc/fc.vsock",
      port: 1024,
    });
    expect(parseAddress("hvsock:///run/vc/fc.vsock:1024")).toEqual(parseAddress("hvsock:/run/vc/fc.vsock:1024"));
    expect(parseAddress("hvsock:rel/v.sock:4294967295")).toEqual({
      kind: "hvsock",
      path: "rel/v.sock",
      port: 2 ** 32 - 1,
    });
    expect(formatAddress(parseAddress("hvsock://run/v.sock:52"))).toBe("hvsock:run/v.sock:52");
    expect(parseAddress("hvsock-listen:/run/vc/fc.vsock:1025")).toEqual({
      kind: "unix",
      path: "/run/vc/fc.vsock_1025",
    });
    for (const bad of [
      "hvsock:/run/v.sock",
      "hvsock::1024",
      "hvsock:/v.sock:-1",
      "hvsock:/v.sock:4294967296",
      "hvsock:/v.sock:x",
    ]) {
      expect(() => parseAddress(bad), bad).toThrow(expect.objectContaining({ code: Code.InvalidArgument }));
    }
  });

  it("vsock://CID:PORT fails, saying why Node cannot open it and what to use instead", async () => {
    const err = await connect("vsock://3:1024").catch((e: unknown) => e);
    expect(err).toMatchObject({ code: Code.InvalidArgument });
    const message = (err as Error).message;
    expect(message).toContain("AF_VSOCK");
    expect(message).toContain("hvsock:PATH:PORT");
    expect(message).toContain("socat");
  });

  it("a server cannot listen on a dial address; the message points to hvsock-listen", async () => {
    const server = createServer();
    onTestFinished(() => server.close());
    await expect(server.listen("hvsock:/tmp/x.vsock:1024")).rejects.toThrow(/hvsock-listen:\/tmp\/x\.vsock:1024/);
  });
});

describe("host-initiated connections", () => {
  it("handshake: CONNECT <port>, OK, then ttrpc calls of every shape through the VMM", async () => {
    const { vmm } = await vmmWithAgent();
    const client = await connected(`hvsock:${vmm.path}:${AGENT_PORT}`);
    expect((await client.unary(Interop.method.echo, { text: "through the vmm" })).text).toBe("through the vmm");
    const { messages } = await drain(client.serverStream(Interop.method.serverStream, { count: 3 }));
    expect(messages.map((m) => m.seq)).toEqual([0, 1, 2]);
    expect((await client.clientStream(Interop.method.clientStream, [{}, {}])).seq).toBe(2);
    const kata = await connected(`hvsock://${vmm.path}:${AGENT_PORT}`);
    await kata.unary(Interop.method.echoEmpty, {});
    expect(vmm.lines).toEqual([`CONNECT ${AGENT_PORT}`, `CONNECT ${AGENT_PORT}`]);
  });

  it("bytes after the OK line are the guest's: they stay in the socket", async () => {
    const { vmm } = await vmmWithAgent({ extra: Buffer.from("guest spoke first") });
    const socket = await dial(`hvsock:${vmm.path}:${AGENT_PORT}`);
    onTestFinished(() => {
      socket.destroy();
    });
    const got = await new Promise<string>((resolve) => {
      let s = "";
      socket.on("data", (c: Buffer) => {
        s += c.toString();
        if (s.length >= "guest spoke first".length) resolve(s);
      });
    });
    expect(got).toBe("guest spoke first");
  });

  it("a refused port: a clear UNAVAILABLE naming the port", async () => {
    const { vmm } = await vmmWithAgent();
    const err = await connect(`hvsock:${vmm.path}:2049`, { hvsock: { maxAttempts: 1 } }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: Code.Unavailable });
    expect((err as Error).message).toMatch(/refused port 2049: nothing in the guest listens on vsock port 2049/);
    expect(vmm.lines).toEqual(["CONNECT 2049"]);
  });

  it("an agent not up yet: refused attempts are retried until it answers (Kata's dial loop)", async () => {
    const { vmm } = await vmmWithAgent({ refuse: 2 });
    const client = await connected(`hvsock:${vmm.path}:${AGENT_PORT}`, { hvsock: { retryDelayMs: 1 } });
    await client.unary(Interop.method.echoEmpty, {});
    expect(vmm.lines).toHaveLength(3);
  });

  it("a slow VMM: the handshake times out and is retried; the next attempt succeeds", async () => {
    const { vmm } = await vmmWithAgent({ stall: 1 });
    // The handshake timer and the retry pause on a fake clock (sockets stay
    // real): the first attempt times out when the test says so, and the
    // second has all the time it needs, however loaded the machine.
    fakeTimeouts();
    onTestFinished(() => void vi.useRealTimers());
    const connecting = connected(`hvsock:${vmm.path}:${AGENT_PORT}`, {
      hvsock: { handshakeTimeoutMs: 20, retryDelayMs: 1 },
    });
    await turnsUntil(() => vmm.lines.length === 1); // the stalled CONNECT reached the VMM
    vi.advanceTimersByTime(20); // its handshake times out
    await turnsUntil(() => vi.getTimerCount() === 1); // the retry pause is set
    vi.advanceTimersByTime(1);
    const client = await connecting;
    vi.useRealTimers();
    await client.unary(Interop.method.echoEmpty, {});
    expect(vmm.lines).toEqual([`CONNECT ${AGENT_PORT}`, `CONNECT ${AGENT_PORT}`]);
  });

  it("a VMM that never answers: each attempt times out; DEADLINE_EXCEEDED names the port", async () => {
    const { vmm } = await vmmWithAgent({ stall: Number.POSITIVE_INFINITY });
    const err = await connect(`hvsock:${vmm.path}:${AGENT_PORT}`, {
      hvsock: { handshakeTimeoutMs: 20, retryDelayMs: 1, maxAttempts: 3 },
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: Code.DeadlineExceeded });
    expect((err as Error).message).toContain(`did not answer CONNECT ${AGENT_PORT} within 20 ms (3 attempts)`);
    expect(vmm.lines).toHaveLength(3);
  });

  it("the dial timeout bounds an attempt too: a 10 s handshake is cut at the connect timeout", async () => {
    const { vmm } = await vmmWithAgent({ stall: Number.POSITIVE_INFINITY });
    const err = await connect(`hvsock:${vmm.path}:${AGENT_PORT}`, { connectTimeoutMs: 50 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: Code.DeadlineExceeded });
    // One attempt, given what was left of the 50 ms: no "(N attempts)".
    expect((err as Error).message).toMatch(new RegExp(`did not answer CONNECT ${AGENT_PORT} within \\d+ ms$`));
    expect(vmm.lines).toEqual([`CONNECT ${AGENT_PORT}`]);
  });

  it("a wrong answer is not a handshake: UNAVAILABLE quoting it", async () => {
    const { vmm } = await vmmWithAgent({ answer: "ERR busy\n" });
    const err = await connect(`hvsock:${vmm.path}:${AGENT_PORT}`, { hvsock: { maxAttempts: 1 } }).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: Code.Unavailable });
    expect((err as Error).message).toContain('"ERR busy"');
  });

  it("an answer past 64 bytes without a newline is refused at once; 64 bytes may still become a line", async () => {
    const long = "x".repeat(65);
    const { vmm } = await vmmWithAgent({ answer: long });
    const err = await dial(`hvsock:${vmm.path}:${AGENT_PORT}`, { hvsock: { maxAttempts: 1 } }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: Code.Unavailable });
    expect((err as Error).message).toContain(`answered "${long}" to CONNECT ${AGENT_PORT}`);

    const { vmm: patient } = await vmmWithAgent({ answer: "x".repeat(64) });
    const waited = await dial(`hvsock:${patient.path}:${AGENT_PORT}`, {
      hvsock: { maxAttempts: 1, handshakeTimeoutMs: 20 },
    }).catch((e: unknown) => e);
    expect(waited).toMatchObject({ code: Code.DeadlineExceeded });
  });

  it("no VMM socket at all: UNAVAILABLE naming the socket", async () => {
    const path = join(tempDir(), "missing.vsock");
    const err = await connect(`hvsock:${path}:1024`, { hvsock: { maxAttempts: 1 } }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: Code.Unavailable });
    expect((err as Error).message).toContain(path);
  });

  it("an aborted signal ends the dial at once with CANCELLED", async () => {
    const { vmm } = await vmmWithAgent({ stall: Number.POSITIVE_INFINITY });
    const controller = new AbortController();
    const p = connect(`hvsock:${vmm.path}:${AGENT_PORT}`, { signal: controller.signal });
    await new Promise<void>((resolve) => {
      const check = () => (vmm.lines.length > 0 ? resolve() : setImmediate(check));
      check();
    });
    controller.abort();
    await expect(p).rejects.toMatchObject({ code: Code.Canceled });
  });
});

describe("cancelling a dial", () => {
  it("a signal aborted before the dial: CANCELLED with its reason, and no CONNECT sent", async () => {
    const { vmm } = await vmmWithAgent();
    const err = await dial(`hvsock:${vmm.path}:${AGENT_PORT}`, { signal: AbortSignal.abort("stop") }).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: Code.Canceled, rawMessage: "connect cancelled", cause: "stop" });
    expect(vmm.lines).toEqual([]);
  });

  it("an abort during the pause between attempts ends the dial without waiting the pause out", async () => {
    const { vmm } = await vmmWithAgent({ refuse: Number.POSITIVE_INFINITY });
    const controller = new AbortController();
    const p = dial(`hvsock:${vmm.path}:${AGENT_PORT}`, {
      signal: controller.signal,
      timeoutMs: 600_000,
      hvsock: { retryDelayMs: 300_000 },
    }).catch((e: unknown) => e);
    // The pause has begun when its timer is set.
    const timers = vi.spyOn(globalThis, "setTimeout");
    onTestFinished(() => timers.mockRestore());
    await turnsUntil(() => timers.mock.calls.some((c) => c[1] === 300_000));
    controller.abort("stop");
    expect(await p).toMatchObject({ code: Code.Canceled, rawMessage: "connect cancelled", cause: "stop" });
    expect(vmm.lines).toHaveLength(1);
  });
});

describe("guest-initiated connections", () => {
  it("hvsock-listen:PATH:PORT serves the connections the VMM makes to PATH_PORT, mode 0600", async () => {
    const { vmm } = await vmmWithAgent();
    const host: Server = createServer().register(Interop, interopImpl);
    const local = await host.listen(`hvsock-listen:${vmm.path}:1025`);
    expect(local).toBe(`unix:${vmm.path}_1025`);
    expect(statSync(`${vmm.path}_1025`).mode & 0o777).toBe(0o600);
    const fromGuest = createClient(await vmm.guestConnect(1025));
    onTestFinished(async () => {
      fromGuest.close();
      await host.close();
    });
    expect((await fromGuest.unary(Interop.method.echo, { text: "from the guest" })).text).toBe("from the guest");
  });
});
