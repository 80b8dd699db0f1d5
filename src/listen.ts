import { chmodSync, lstatSync, mkdtempSync, renameSync, rmdirSync, unlinkSync } from "node:fs";
import { Server as NetServer, Socket } from "node:net";
import { dirname, join } from "node:path";
import { formatAddress, netOptions, parseAddress, type Address } from "./address.js";
import { Code } from "./code.js";
import { listenBacklog } from "./listen-backlog.js";
import { TtrpcError } from "./ttrpc-error.js";

/** A listening socket and what stopping it must undo. */
export interface Listener {
  readonly server: NetServer;
  /** The canonical address it listens on (a TCP port 0 resolved). */
  readonly local: string;
  /** Removes what listening left on disk (the unix socket file). */
  readonly cleanup: () => void;
  /**
   * True when the server is ours (listenOnAddress): no one else holds the
   * sockets it accepts, which arrive paused, so the connection may move to
   * another socket object (adoptForDirectReads).
   */
  readonly own: boolean;
}

/** The address a `net.Server` someone else started listens on, as `formatAddress` spells it. */
export function listenerOf(server: NetServer): Listener {
  const addr = server.address();
  const local = typeof addr === "string" ? `unix:${addr}` : addr ? `tcp:${addr.address}:${addr.port}` : "";
  return { server, local, cleanup: () => {}, own: false };
}

/**
 * Listens on an address (see `parseAddress`). A unix socket is bound in a
 * private directory, given its mode, then moved into place: no moment exists
 * when others could connect. A stale socket file is replaced first. The
 * accept queue is `backlog` long, by default the kernel's somaxconn (see
 * `listenBacklog`).
 */
export async function listenOnAddress(address: string, socketMode = 0o600, backlog?: number): Promise<Listener> {
  const a = parseAddress(address);
  const queue = listenBacklog(backlog);
  // Nothing is read before the server takes the connection over (see Listener.own).
  const net = new NetServer({ pauseOnConnect: true });
  let cleanup = () => {};
  if (a.kind === "unix") {
    await removeStaleSocket(a.path);
    const dir = mkdtempSync(join(dirname(a.path), ".ttrpc-"));
    const tmp = join(dir, "s");
    try {
      await listenOn(net, { path: tmp, backlog: queue });
      chmodSync(tmp, socketMode);
      renameSync(tmp, a.path);
    } catch (e) {
      net.close();
      throw e;
    } finally {
      rmdirSync(dir);
    }
    cleanup = () => {
      try {
        unlinkSync(a.path);
      } catch {
        // already gone
      }
    };
  } else {
    await listenOn(net, { ...netOptions(a), backlog: queue });
  }
  const actual: Address = a.kind === "tcp" ? { ...a, port: (net.address() as { port: number }).port } : a;
  return { server: net, local: formatAddress(actual), cleanup, own: true };
}

/** Stops listening and cleans up; resolves once the server closed. */
export function stopListening(l: Listener): Promise<void> {
  return new Promise<void>((resolve) => {
    l.server.close(() => resolve());
    l.cleanup();
  });
}

type ListenOn = ({ path: string } | { host: string; port: number }) & { backlog: number };

function listenOn(net: NetServer, opts: ListenOn): Promise<void> {
  return new Promise((resolve, reject) => {
    net.once("error", reject);
    net.listen(opts, () => {
      net.off("error", reject);
      resolve();
    });
  });
}

// A socket file left by a server that died is replaced, as users expect; a
// live server's socket, or a file that is not a socket, is an error.
async function removeStaleSocket(path: string): Promise<void> {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) {
    throw new TtrpcError(`cannot listen on ${path}: the file exists and is not a socket`, Code.AlreadyExists);
  }
  const live = await new Promise<boolean>((resolve) => {
    const s = new Socket();
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
    s.connect({ path });
  });
  if (live)
    throw new TtrpcError(
      `cannot listen on ${path}: a server is already listening there (EADDRINUSE)`,
      Code.AlreadyExists,
    );
  unlinkSync(path);
}
