import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { type Address, dial, formatAddress, netOptions, parseAddress } from "../../src/address.js";
import { Code } from "../../src/code.js";
import { TtrpcError } from "../../src/ttrpc-error.js";
import { fakeTimeouts, tempDir } from "../common.js";

describe("parseAddress", () => {
  it.each<[string, Address]>([
    ["unix:/run/a.sock", { kind: "unix", path: "/run/a.sock" }],
    ["unix:///run/a.sock", { kind: "unix", path: "/run/a.sock" }],
    ["/run/a.sock", { kind: "unix", path: "/run/a.sock" }],
    ["rel/a.sock", { kind: "unix", path: "rel/a.sock" }],
    // A Windows drive path is a path, not a scheme.
    ["C:\\run\\a.sock", { kind: "unix", path: "C:\\run\\a.sock" }],
    ["c:/run/a.sock", { kind: "unix", path: "c:/run/a.sock" }],
    ["unix-abstract:ttrpc", { kind: "abstract", name: "ttrpc" }],
    ["unix:@ttrpc", { kind: "abstract", name: "ttrpc" }],
    ["unix://@ttrpc", { kind: "abstract", name: "ttrpc" }],
    ["tcp:127.0.0.1:1234", { kind: "tcp", host: "127.0.0.1", port: 1234 }],
    ["tcp://localhost:0", { kind: "tcp", host: "localhost", port: 0 }],
    ["tcp::65535", { kind: "tcp", host: "127.0.0.1", port: 65535 }],
    ["tcp:[::1]:80", { kind: "tcp", host: "::1", port: 80 }],
    ["npipe:containerd", { kind: "pipe", path: "\\\\.\\pipe\\containerd" }],
    ["npipe://./pipe/containerd", { kind: "pipe", path: "\\\\.\\pipe\\containerd" }],
    ["npipe:\\\\.\\pipe\\containerd", { kind: "pipe", path: "\\\\.\\pipe\\containerd" }],
    ["\\\\.\\pipe\\containerd", { kind: "pipe", path: "\\\\.\\pipe\\containerd" }],
    ["//./pipe/containerd", { kind: "pipe", path: "\\\\.\\pipe\\containerd" }],
    ["hvsock:/run/vm.sock:1024", { kind: "hvsock", path: "/run/vm.sock", port: 1024 }],
    ["hvsock:///run/vm.sock:4294967295", { kind: "hvsock", path: "/run/vm.sock", port: 4294967295 }],
    // Firecracker delivers the guest's connections to PORT on PATH_PORT.
    ["hvsock-listen:/run/vm.sock:1024", { kind: "unix", path: "/run/vm.sock_1024" }],
  ])("%s", (text, want) => {
    expect(parseAddress(text)).toEqual(want);
  });

  it.each([
    ["", "empty"],
    ["npipe:", "no pipe name"],
    ["npipe://./pipe/", "no pipe name"],
    ["unix-abstract:", "no abstract socket name"],
    ["unix:@", "no abstract socket name"],
    ["unix://@", "no abstract socket name"],
    ["unix:", "no socket path"],
    ["unix://", "no socket path"],
    ["hvsock:/run/vm.sock", "expected hvsock:PATH:PORT"],
    ["hvsock::1024", "expected hvsock:PATH:PORT"],
    ["hvsock-listen:1024", "expected hvsock-listen:PATH:PORT"],
    ["hvsock:/run/vm.sock:", "vsock port must be 0-4294967295"],
    ["hvsock:/run/vm.sock:-1", "vsock port must be 0-4294967295"],
    ["hvsock:/run/vm.sock:4294967296", "vsock port must be 0-4294967295"],
    ["vsock://3:1024", "Node.js cannot open AF_VSOCK sockets"],
    ["tcp:localhost", "expected tcp:HOST:PORT"],
    ["tcp:localhost:", "port must be 0-65535"],
    ["tcp:localhost:65536", "port must be 0-65535"],
    ["tcp:localhost:-1", "port must be 0-65535"],
    ["tcp:localhost:1.5", "port must be 0-65535"],
    ["http://localhost:80", "unknown scheme"],
  ])("refuses %j: %s", (text, why) => {
    expect(() => parseAddress(text)).toThrow(
      expect.objectContaining({
        code: Code.InvalidArgument,
        rawMessage: expect.stringContaining(`invalid address "${text}": ${why}`),
      }),
    );
  });
});

describe("formatAddress", () => {
  it.each([
    ["unix:/run/a.sock", "unix:/run/a.sock"],
    ["unix:@ttrpc", "unix-abstract:ttrpc"],
    ["tcp://localhost:1", "tcp:localhost:1"],
    ["tcp:[::1]:80", "tcp:[::1]:80"],
    ["//./pipe/containerd", "npipe:containerd"],
    ["hvsock://vm.sock:3", "hvsock:vm.sock:3"],
  ])("%s is %s, which parses back to the same address", (text, canonical) => {
    expect(formatAddress(parseAddress(text))).toBe(canonical);
    expect(parseAddress(canonical)).toEqual(parseAddress(text));
  });
});

describe("netOptions", () => {
  it("gives node:net a path, an abstract name behind a NUL, or host and port", () => {
    expect(netOptions(parseAddress("unix:/a"))).toEqual({ path: "/a" });
    expect(netOptions(parseAddress("npipe:p"))).toEqual({ path: "\\\\.\\pipe\\p" });
    expect(netOptions(parseAddress("unix:@n"))).toEqual({ path: "\0n" });
    expect(netOptions(parseAddress("tcp:h:1"))).toEqual({ host: "h", port: 1 });
  });

  it("refuses a hybrid vsock address and names where the guest's connections arrive", () => {
    expect(() => netOptions(parseAddress("hvsock:/run/vm.sock:1024"))).toThrow(
      expect.objectContaining({
        code: Code.InvalidArgument,
        rawMessage: expect.stringContaining("hvsock-listen:/run/vm.sock:1024"),
      }),
    );
  });
});

describe("dial", () => {
  let server: Server | undefined;
  afterEach(async () => {
    vi.useRealTimers();
    await new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())));
    server = undefined;
  });

  /** A listening unix socket that closes whatever connects. */
  async function listening(): Promise<string> {
    const path = join(tempDir(), "s.sock");
    server = createServer((s) => s.destroy());
    await new Promise<void>((resolve) => server!.listen(path, resolve));
    return path;
  }

  it("connects to a listening socket", async () => {
    const socket = await dial(`unix:${await listening()}`);
    expect(socket.destroyed).toBe(false);
    socket.destroy();
  });

  it("rejects with UNAVAILABLE naming the address when nothing listens", async () => {
    const address = `unix:${join(tempDir(), "none.sock")}`;
    const e = await dial(address).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(TtrpcError);
    expect((e as TtrpcError).code).toBe(Code.Unavailable);
    expect((e as TtrpcError).message).toContain(`cannot connect to ${address}: `);
    expect((e as TtrpcError).cause).toBeInstanceOf(Error);
  });

  it("is CANCELLED by a signal aborted before it starts", async () => {
    const path = await listening();
    const e = await dial(`unix:${path}`, { signal: AbortSignal.abort() }).catch((x: unknown) => x);
    expect((e as TtrpcError).code).toBe(Code.Canceled);
    expect((e as TtrpcError).rawMessage).toBe("connect cancelled");
  });

  it("is CANCELLED by a signal aborted while it connects", async () => {
    const path = await listening();
    const ac = new AbortController();
    const dialing = dial(`unix:${path}`, { signal: ac.signal });
    // The connect completes on a later turn of the event loop; the abort is now.
    ac.abort();
    const e = await dialing.catch((x: unknown) => x);
    expect((e as TtrpcError).code).toBe(Code.Canceled);
  });

  it("is DEADLINE_EXCEEDED when timeoutMs passes first (on a fake clock)", async () => {
    const path = await listening();
    fakeTimeouts();
    const dialing = dial(`unix:${path}`, { timeoutMs: 50 });
    vi.advanceTimersByTime(49);
    vi.advanceTimersByTime(1);
    const e = await dialing.catch((x: unknown) => x);
    expect((e as TtrpcError).code).toBe(Code.DeadlineExceeded);
    expect((e as TtrpcError).rawMessage).toBe(`connect to unix:${path} timed out`);
  });

  it("clears its timer and abort listener once connected", async () => {
    const path = await listening();
    fakeTimeouts();
    const ac = new AbortController();
    const remove = vi.spyOn(ac.signal, "removeEventListener");
    const socket = await dial(`unix:${path}`, { timeoutMs: 50, signal: ac.signal });
    expect(vi.getTimerCount()).toBe(0);
    expect(remove).toHaveBeenCalledWith("abort", expect.any(Function));
    // A late abort no longer reaches the connected socket.
    ac.abort();
    expect(socket.destroyed).toBe(false);
    socket.destroy();
  });
});
