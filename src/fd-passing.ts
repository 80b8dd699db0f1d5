// Descriptors over a unix socket as SCM_RIGHTS, both ways. Node's `net`
// neither attaches one nor keeps one that arrives (its IPC handle passing
// speaks Node's own protocol), so the optional `koffi` FFI package calls libc's
// sendmsg(2) and recvmsg(2) on the socket's descriptor. Used where a peer
// speaks plain SCM_RIGHTS: QEMU's QMP `getfd` (migration/qemu) and runc's
// console socket (the reference shim); loaded on first use only.
import type { Socket } from "node:net";
import { koffiBinding } from "./optional-koffi.js";

/** Thrown when a descriptor cannot be passed (no koffi, not Linux, the call failed). */
export class FdPassingError extends Error {
  override readonly name = "FdPassingError";
}

interface Msghdr {
  name: null;
  namelen: number;
  iov: { base: Buffer; len: number }[];
  iovlen: number;
  control: Buffer;
  controllen: number;
  flags: number;
}
type MsgCall = (fd: number, msg: Msghdr, flags: number) => number;
interface Binding {
  sendmsg: MsgCall;
  recvmsg: MsgCall;
  errno: () => number;
}

const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const MSG_NOSIGNAL = 0x4000;
const EAGAIN = 11;
// struct cmsghdr { size_t cmsg_len; int cmsg_level; int cmsg_type; } + one int, on LP64.
const CMSG_HEADER = 16;
const CMSG_SPACE_ONE_FD = 24;

const bindFdPassing = koffiBinding<Binding>(
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
    const libc = koffi.load(null);
    const func = (name: string) => libc.func(name, "intptr_t", ["int", "ttrpc_es_msghdr *", "int"]) as MsgCall;
    return { sendmsg: func("sendmsg"), recvmsg: func("recvmsg"), errno: () => koffi.errno() };
  },
  (cause) =>
    new FdPassingError("passing a descriptor needs the optional dependency koffi (npm install koffi)", { cause }),
);

/** koffi's sendmsg and recvmsg; rejects with FdPassingError where they cannot be had. */
export function loadFdPassing(): Promise<Binding> {
  if (process.platform !== "linux" || (process.arch !== "x64" && process.arch !== "arm64"))
    return Promise.reject(
      new FdPassingError(
        `descriptor passing is implemented for Linux x64/arm64, not ${process.platform}/${process.arch}`,
      ),
    );
  return bindFdPassing();
}

function descriptorOf(socket: Socket): number {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== "number" || fd < 0) throw new FdPassingError("the socket is not connected");
  return fd;
}

function message(data: Buffer, control: Buffer): Msghdr {
  return {
    name: null,
    namelen: 0,
    iov: [{ base: data, len: data.length }],
    iovlen: 1,
    control,
    controllen: control.length,
    flags: 0,
  };
}

/** Runs a non-blocking sendmsg or recvmsg until it does not answer EAGAIN. */
async function untilReady(call: () => number, errno: () => number, what: string): Promise<number> {
  for (;;) {
    const n = call();
    if (n >= 0) return n;
    const e = errno();
    if (e !== EAGAIN) throw new FdPassingError(`${what} failed (errno ${e})`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * Writes `data` on `socket` with `fd` attached, in one sendmsg(2). The
 * socket's own write queue must be empty (the caller serialises writes), or
 * the bytes would overtake queued ones. Linux, 64-bit little-endian only.
 */
export async function sendWithFd(socket: Socket, data: Buffer, fd: number): Promise<void> {
  const { sendmsg, errno } = await loadFdPassing();
  const own = descriptorOf(socket);
  if (socket.writableLength > 0) throw new FdPassingError("the socket has queued writes");
  const control = Buffer.alloc(CMSG_SPACE_ONE_FD);
  control.writeBigUInt64LE(BigInt(CMSG_HEADER + 4), 0);
  control.writeInt32LE(SOL_SOCKET, 8);
  control.writeInt32LE(SCM_RIGHTS, 12);
  control.writeInt32LE(fd, CMSG_HEADER);
  // A small message: the kernel takes it whole or fails.
  const sent = await untilReady(() => sendmsg(own, message(data, control), MSG_NOSIGNAL), errno, "sendmsg");
  if (sent !== data.length) throw new FdPassingError(`sendmsg sent ${sent} of ${data.length} bytes`);
}

/**
 * Reads one message from `socket` and the descriptor it carries, or
 * undefined when it carries none. Node must not read the socket (accept it
 * with `pauseOnConnect`), or its bytes and the descriptor would be gone.
 */
export async function receiveFd(socket: Socket): Promise<number | undefined> {
  const { recvmsg, errno } = await loadFdPassing();
  const own = descriptorOf(socket);
  const data = Buffer.alloc(4096);
  const control = Buffer.alloc(CMSG_SPACE_ONE_FD);
  await untilReady(() => recvmsg(own, message(data, control), 0), errno, "recvmsg");
  const carries =
    control.readBigUInt64LE(0) >= BigInt(CMSG_HEADER + 4) &&
    control.readInt32LE(8) === SOL_SOCKET &&
    control.readInt32LE(12) === SCM_RIGHTS;
  return carries ? control.readInt32LE(CMSG_HEADER) : undefined;
}
