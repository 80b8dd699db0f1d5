// Peer credentials of a unix socket (Linux SO_PEERCRED), and the authorize
// checks Go's ttrpc builds on them (unixcreds_linux.go). Node's `net` has no
// getsockopt, so the optional `koffi` FFI package calls libc's; it is loaded
// on the first read only, and a user who never asks for credentials needs
// neither it nor this module's cost. Every failure to read refuses: the
// checks fail closed.
import type { Duplex } from "node:stream";
import { endianness } from "node:os";
import { Code } from "./code.js";
import { koffiBinding } from "./optional-koffi.js";
import { TtrpcError } from "./ttrpc-error.js";

/**
 * The process at the other end of a unix socket, as it was when it called
 * connect(2) (or listen(2), seen from a client).
 */
export interface PeerCredentials {
  readonly pid: number;
  /** Effective user id. */
  readonly uid: number;
  /** Effective group id. */
  readonly gid: number;
}

/** A connection check: fits `ServerOptions.authorize`, and a client can await it on the socket it dialed. */
export type CredentialsCheck = (socket: Duplex, peer?: unknown) => Promise<void>;

type Getsockopt = (fd: number, level: number, name: number, value: Buffer, length: Uint32Array) => number;
interface Binding {
  getsockopt: Getsockopt;
  errno: () => number;
}

const SOL_SOCKET = 1;
const AF_UNIX = 1;
// asm-generic values; powerpc numbers SO_PEERCRED apart. mips, sparc and
// parisc number both apart and are not listed: there the read refuses.
const OPTIONS: Partial<Record<NodeJS.Architecture, { peercred: number; domain: number }>> = {
  x64: { peercred: 17, domain: 39 },
  arm64: { peercred: 17, domain: 39 },
  arm: { peercred: 17, domain: 39 },
  ia32: { peercred: 17, domain: 39 },
  s390x: { peercred: 17, domain: 39 },
  riscv64: { peercred: 17, domain: 39 },
  loong64: { peercred: 17, domain: 39 },
  ppc64: { peercred: 21, domain: 39 },
};

const unreadable = (why: string, cause?: unknown) =>
  new TtrpcError(`ttrpc: cannot read peer credentials: ${why}`, Code.FailedPrecondition, { cause });

// The running program: Node links libc dynamically, whichever libc it is.
const loadBinding = koffiBinding<Binding>(
  (koffi) => ({
    getsockopt: koffi.load(null).func("getsockopt", "int", ["int", "int", "int", "void *", "uint32_t *"]) as Getsockopt,
    errno: () => koffi.errno(),
  }),
  (cause) => unreadable("the optional dependency koffi cannot be loaded (npm install koffi)", cause),
);

const cache = new WeakMap<Duplex, Promise<PeerCredentials>>();

/**
 * The credentials of the process at the other end of a unix socket: the
 * client, on a socket a server accepted; the server, on a socket a client
 * dialed. Read once per socket (they are fixed at connect time). Rejects with a FAILED_PRECONDITION TtrpcError
 * off Linux, without koffi, on a socket that is not a connected unix socket
 * (TCP, a Duplex handed in, a closed socket), or when getsockopt fails.
 */
export function peerCredentials(socket: Duplex): Promise<PeerCredentials> {
  let read = cache.get(socket);
  if (read === undefined) {
    read = readCredentials(socket);
    cache.set(socket, read);
    // Only an answer is kept: a read before the socket was connected may be tried again.
    read.catch(() => cache.delete(socket));
  }
  return read;
}

async function readCredentials(socket: Duplex): Promise<PeerCredentials> {
  if (process.platform !== "linux") throw unreadable(`SO_PEERCRED is read on Linux only, not on ${process.platform}`);
  const options = OPTIONS[process.arch];
  if (options === undefined) throw unreadable(`the SO_PEERCRED number of ${process.arch} is not known`);
  const { getsockopt, errno } = await loadBinding();
  // Node keeps a connected socket's descriptor on its handle; -1 or none
  // means closed, or a Duplex that is not a socket at all.
  const fd = (socket as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== "number" || fd < 0) throw unreadable("the stream is not a connected socket");
  const option = (name: number, size: number): Buffer => {
    const value = Buffer.alloc(size);
    const length = new Uint32Array([size]);
    if (getsockopt(fd, SOL_SOCKET, name, value, length) !== 0) throw unreadable(`getsockopt failed (errno ${errno()})`);
    return value;
  };
  const le = endianness() === "LE";
  // SO_PEERCRED on a TCP socket succeeds with uid and gid "nobody": only a
  // unix socket's answer means anything.
  const domain = option(options.domain, 4);
  if ((le ? domain.readInt32LE(0) : domain.readInt32BE(0)) !== AF_UNIX) throw unreadable("not a unix socket");
  const ucred = option(options.peercred, 12); // struct ucred { pid_t pid; uid_t uid; gid_t gid; }
  return le
    ? { pid: ucred.readInt32LE(0), uid: ucred.readUInt32LE(4), gid: ucred.readUInt32LE(8) }
    : { pid: ucred.readInt32BE(0), uid: ucred.readUInt32BE(4), gid: ucred.readUInt32BE(8) };
}

/**
 * Accepts a peer whose effective uid and gid are these; -1 accepts any. As
 * Go's UnixSocketRequireUidGid: a mismatch is PERMISSION_DENIED "ttrpc:
 * invalid credentials: operation not permitted", with the ids that differed.
 */
export function requireUidGid(uid: number, gid: number): CredentialsCheck {
  return async (socket) => {
    const peer = await peerCredentials(socket);
    if ((uid !== -1 && uid !== peer.uid) || (gid !== -1 && gid !== peer.gid)) {
      throw new TtrpcError(
        "ttrpc: invalid credentials: operation not permitted " +
          `(peer pid ${peer.pid} uid ${peer.uid} gid ${peer.gid}; required uid ${uid} gid ${gid})`,
        Code.PermissionDenied,
      );
    }
  };
}

/** Accepts root only (uid 0, gid 0), as Go's UnixSocketRequireRoot. */
export function requireRoot(): CredentialsCheck {
  return requireUidGid(0, 0);
}

/**
 * Accepts peers with this process's effective uid and gid, read now, as Go's
 * UnixSocketRequireSameUser. Meant for abstract sockets, which any user can
 * reach.
 */
export function requireSameUser(): CredentialsCheck {
  if (process.geteuid === undefined || process.getegid === undefined) {
    const why = unreadable(`this process has no unix user on ${process.platform}`);
    return () => Promise.reject(why);
  }
  return requireUidGid(process.geteuid(), process.getegid());
}
