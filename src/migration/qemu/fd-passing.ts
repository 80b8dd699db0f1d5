// Sends bytes with a file descriptor attached (SCM_RIGHTS) on a connected
// unix socket. QEMU's QMP `getfd` takes the descriptor that arrives with the
// command's own bytes, and Node's `net` cannot attach one (its IPC handle
// passing speaks Node's protocol), so the optional `koffi` FFI package calls
// libc's sendmsg(2) on the socket's descriptor. Loaded on first use only: a
// backend on unix/tcp URIs never needs it.
import type { Socket } from "node:net";
import { loadKoffi } from "../../optional-koffi.js";

interface Iovec {
  base: Buffer;
  len: number;
}
interface Msghdr {
  name: null;
  namelen: number;
  iov: Iovec[];
  iovlen: number;
  control: Buffer;
  controllen: number;
  flags: number;
}
type Sendmsg = (fd: number, msg: Msghdr, flags: number) => number;

/** Thrown when a descriptor cannot be sent (no koffi, not Linux, sendmsg failed). */
export class FdPassingError extends Error {
  override readonly name = "FdPassingError";
}

const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const MSG_NOSIGNAL = 0x4000;
// struct cmsghdr { size_t cmsg_len; int cmsg_level; int cmsg_type; } + one int, on LP64.
const CMSG_HEADER = 16;
const CMSG_SPACE_ONE_FD = 24;

let binding: Promise<{ sendmsg: Sendmsg; errno: () => number }> | undefined;

function loadBinding(): Promise<{ sendmsg: Sendmsg; errno: () => number }> {
  binding ??= loadKoffi().then(
    (koffi) => {
      koffi.struct("ttrpc_es_iovec", { base: "void *", len: "size_t" });
      koffi.struct("ttrpc_es_msghdr", {
        name: "void *",
        namelen: "uint32_t",
        iov: "ttrpc_es_iovec *",
        iovlen: "size_t",
        control: "void *",
        controllen: "size_t",
        flags: "int",
      });
      const sendmsg = koffi.load(null).func("sendmsg", "intptr_t", ["int", "ttrpc_es_msghdr *", "int"]) as Sendmsg;
      return { sendmsg, errno: () => koffi.errno() };
    },
    (e: unknown) => {
      binding = undefined;
      throw new FdPassingError("passing a descriptor needs the optional dependency koffi (npm install koffi)", {
        cause: e,
      });
    },
  );
  return binding;
}

/**
 * Writes `data` on `socket` with `fd` attached, in one sendmsg(2). The
 * socket's own write queue must be empty (the caller serialises writes), or
 * the bytes would overtake queued ones. Linux, 64-bit little-endian only.
 */
export async function sendWithFd(socket: Socket, data: Buffer, fd: number): Promise<void> {
  if (process.platform !== "linux" || (process.arch !== "x64" && process.arch !== "arm64"))
    throw new FdPassingError(
      `descriptor passing is implemented for Linux x64/arm64, not ${process.platform}/${process.arch}`,
    );
  const { sendmsg, errno } = await loadBinding();
  const own = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof own !== "number" || own < 0) throw new FdPassingError("the QMP socket is not connected");
  if (socket.writableLength > 0) throw new FdPassingError("the QMP socket has queued writes");
  const control = Buffer.alloc(CMSG_SPACE_ONE_FD);
  control.writeBigUInt64LE(BigInt(CMSG_HEADER + 4), 0);
  control.writeInt32LE(SOL_SOCKET, 8);
  control.writeInt32LE(SCM_RIGHTS, 12);
  control.writeInt32LE(fd, CMSG_HEADER);
  const msg = {
    name: null,
    namelen: 0,
    iov: [{ base: data, len: data.length }],
    iovlen: 1,
    control,
    controllen: control.length,
    flags: 0,
  };
  // A QMP command is small: the kernel takes it whole or fails (EAGAIN on a
  // full buffer is retried once the socket drains).
  for (;;) {
    const sent = sendmsg(own, msg, MSG_NOSIGNAL);
    if (sent === data.length) return;
    const e = errno();
    if (sent < 0 && e === 11) {
      await new Promise((r) => setTimeout(r, 5));
      continue;
    }
    throw new FdPassingError(sent < 0 ? `sendmsg failed (errno ${e})` : `sendmsg sent ${sent} of ${data.length} bytes`);
  }
}
