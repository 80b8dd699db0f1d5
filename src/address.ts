import { Socket, type NetConnectOpts, type OnReadOpts, type SocketConstructorOpts } from "node:net";
import { Code } from "./code.js";
import type { HybridVsockOptions } from "./hybrid-vsock.js";
import { TtrpcError } from "./ttrpc-error.js";

/** A parsed ttrpc address. */
export type Address =
  | { kind: "unix"; path: string }
  | { kind: "abstract"; name: string }
  | { kind: "tcp"; host: string; port: number }
  | { kind: "pipe"; path: string }
  /** Hybrid vsock: the VMM's unix socket and the guest's vsock port (see hybrid-vsock.ts). */
  | { kind: "hvsock"; path: string; port: number };

/**
 * Parses the address forms used around containerd: `unix:PATH`,
 * `unix://PATH`, a bare absolute or relative path, `unix-abstract:NAME` or
 * `unix:@NAME` (Linux abstract sockets), `tcp:HOST:PORT` (also `tcp://`), and
 * Windows named pipes as `npipe:NAME`, `npipe://./pipe/NAME` or `\\.\pipe\NAME`.
 * Hybrid vsock (Firecracker, Cloud Hypervisor; Kata's URIs): `hvsock:PATH:PORT`
 * or `hvsock://PATH:PORT` dial a guest's vsock port through the VMM's unix
 * socket; `hvsock-listen:PATH:PORT` is the unix socket `PATH_PORT` where the
 * VMM delivers the guest's connections to PORT. `vsock://CID:PORT` is refused
 * with the reason and the alternatives.
 */
export function parseAddress(address: string): Address {
  const bad = (why: string) => new TtrpcError(`invalid address "${address}": ${why}`, Code.InvalidArgument);
  if (address === "") throw bad("empty");
  if (address.startsWith("\\\\.\\pipe\\") || address.startsWith("//./pipe/")) {
    return { kind: "pipe", path: address.replaceAll("/", "\\") };
  }
  if (address.startsWith("npipe:")) {
    const name = address
      .slice("npipe:".length)
      .replace(/^\/\/\.\/pipe\//, "")
      .replace(/^\\\\\.\\pipe\\/, "");
    if (name === "") throw bad("no pipe name");
    return { kind: "pipe", path: `\\\\.\\pipe\\${name}` };
  }
  if (address.startsWith("unix-abstract:")) {
    const name = address.slice("unix-abstract:".length);
    if (name === "") throw bad("no abstract socket name");
    return { kind: "abstract", name };
  }
  if (address.startsWith("unix:")) {
    let path = address.slice("unix:".length);
    if (path.startsWith("//")) path = path.slice(2);
    if (path.startsWith("@")) {
      if (path.length === 1) throw bad("no abstract socket name");
      return { kind: "abstract", name: path.slice(1) };
    }
    if (path === "") throw bad("no socket path");
    return { kind: "unix", path };
  }
  if (address.startsWith("hvsock:") || address.startsWith("hvsock-listen:")) {
    const listen = address.startsWith("hvsock-listen:");
    let rest = address.slice(address.indexOf(":") + 1);
    if (rest.startsWith("//")) rest = rest.slice(2);
    const i = rest.lastIndexOf(":");
    const path = rest.slice(0, i);
    const port = Number(rest.slice(i + 1));
    if (i <= 0 || path === "") throw bad(`expected ${listen ? "hvsock-listen" : "hvsock"}:PATH:PORT`);
    // vsock ports are 32-bit (struct sockaddr_vm's svm_port).
    if (!/^\d+$/.test(rest.slice(i + 1)) || port > 0xffffffff) throw bad("vsock port must be 0-4294967295");
    // The guest's connections to PORT arrive on PATH_PORT (Firecracker docs/vsock.md).
    return listen ? { kind: "unix", path: `${path}_${port}` } : { kind: "hvsock", path, port };
  }
  if (address.startsWith("vsock:")) {
    throw bad(
      "Node.js cannot open AF_VSOCK sockets (node:net has no vsock family); " +
        "reach the guest through its VMM's hybrid vsock socket " +
        "(hvsock:PATH:PORT, Firecracker and Cloud Hypervisor), or bridge vsock to a unix socket, " +
        "e.g. socat UNIX-LISTEN:/run/agent.sock,fork,mode=600 VSOCK-CONNECT:CID:PORT, then unix:/run/agent.sock",
    );
  }
  if (address.startsWith("tcp:")) {
    let rest = address.slice("tcp:".length);
    if (rest.startsWith("//")) rest = rest.slice(2);
    const i = rest.lastIndexOf(":");
    if (i < 0) throw bad("expected tcp:HOST:PORT");
    let host = rest.slice(0, i);
    if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
    const port = Number(rest.slice(i + 1));
    if (!Number.isInteger(port) || port < 0 || port > 65535 || rest.slice(i + 1) === "")
      throw bad("port must be 0-65535");
    return { kind: "tcp", host: host === "" ? "127.0.0.1" : host, port };
  }
  if (/^[a-z][a-z0-9+.-]*:/i.test(address) && !/^[a-z]:[\\/]/i.test(address)) {
    throw bad("unknown scheme; use unix:, unix-abstract:, tcp:, npipe:, hvsock: or hvsock-listen:");
  }
  return { kind: "unix", path: address };
}

/** The address in its canonical string form. */
export function formatAddress(a: Address): string {
  switch (a.kind) {
    case "unix":
      return `unix:${a.path}`;
    case "abstract":
      return `unix-abstract:${a.name}`;
    case "tcp":
      return `tcp:${a.host.includes(":") ? `[${a.host}]` : a.host}:${a.port}`;
    case "pipe":
      return `npipe:${a.path.slice("\\\\.\\pipe\\".length)}`;
    case "hvsock":
      return `hvsock:${a.path}:${a.port}`;
  }
}

/** node:net options for the address (the same for connect and listen). */
export function netOptions(a: Address): { path: string } | { host: string; port: number } {
  switch (a.kind) {
    case "unix":
    case "pipe":
      return { path: a.path };
    case "abstract":
      return { path: `\0${a.name}` };
    case "tcp":
      return { host: a.host, port: a.port };
    case "hvsock":
      throw new TtrpcError(
        `${formatAddress(a)} is an address to dial; ` +
          `the guest's connections to port ${a.port} arrive on hvsock-listen:${a.path}:${a.port}`,
        Code.InvalidArgument,
      );
  }
}

/**
 * Opens a socket to the address; rejects with UNAVAILABLE naming the address
 * when it cannot. A hybrid vsock address also does the VMM's handshake, with
 * Kata's retries: `timeoutMs` (default 30 s) bounds them, `hvsock` tunes them.
 */
export function dial(address: string | Address, options: DialOptions = {}): Promise<Socket> {
  return dialSocket(typeof address === "string" ? parseAddress(address) : address, options);
}

/** Options of {@link dial}. */
export interface DialOptions {
  /** Aborting it cancels the dial with CANCELLED. */
  signal?: AbortSignal;
  /** Bounds the connect (for hybrid vsock, all its attempts), in milliseconds. */
  timeoutMs?: number;
  /** Hybrid vsock handshake timing. */
  hvsock?: Pick<HybridVsockOptions, "handshakeTimeoutMs" | "retryDelayMs" | "maxAttempts">;
}

/**
 * Dials as {@link dial}, with `onread` on the socket. Not for hybrid vsock:
 * its handshake reads the socket first, so `onread` is not applied there.
 */
export function dialSocket(a: Address, options: DialOptions, onread?: OnReadOpts): Promise<Socket> {
  if (a.kind === "hvsock") {
    const { signal, timeoutMs } = options;
    return import("./hybrid-vsock.js").then((m) =>
      m.dialHybridVsock(a, {
        ...options.hvsock,
        ...(signal === undefined ? {} : { signal }),
        ...(timeoutMs === undefined ? {} : { dialTimeoutMs: timeoutMs }),
      }),
    );
  }
  return new Promise((resolve, reject) => {
    // The constructor takes onread (net.connect hands it its options); @types/node lists it under connect's only.
    const socket = new Socket((onread === undefined ? {} : { onread }) as SocketConstructorOpts);
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      cleanup();
      socket.destroy();
      reject(
        err instanceof TtrpcError
          ? err
          : new TtrpcError(`cannot connect to ${formatAddress(a)}: ${err.message}`, Code.Unavailable, { cause: err }),
      );
    };
    const onAbort = () => fail(new TtrpcError("connect cancelled", Code.Canceled));
    // The error listener stays: until the caller attaches its own, an error
    // (EPIPE, ECONNRESET) must not become an uncaught exception.
    const cleanup = () => {
      if (timer !== undefined) clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
    };
    if (options.signal?.aborted) return onAbort();
    options.signal?.addEventListener("abort", onAbort, { once: true });
    if (options.timeoutMs !== undefined) {
      timer = setTimeout(
        () => fail(new TtrpcError(`connect to ${formatAddress(a)} timed out`, Code.DeadlineExceeded)),
        options.timeoutMs,
      );
    }
    socket.on("error", fail);
    socket.connect(netOptions(a) as NetConnectOpts, () => {
      if (settled) return;
      settled = true;
      cleanup();
      if (a.kind === "tcp") socket.setNoDelay(true);
      resolve(socket);
    });
  });
}
