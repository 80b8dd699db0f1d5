import { type OnReadOpts, Socket } from "node:net";
import type { Duplex } from "node:stream";

/** Who the reads of a socket go to: where each lands, and what to do once it has. */
export interface ReadTarget {
  /** The buffer the next read lands in. */
  target(): Uint8Array;
  /** `n` bytes landed in the buffer `target()` returned last. */
  filled(n: number): void;
}

// Reads before bind (and the one after, see onread) land here: an accepted
// connection's first request does. A slice of Node's pool, not 64 KiB of its
// own that every connection would keep.
const EARLY_BYTES = 1024;

/**
 * The reads of a socket dialed with net.Socket's `onread` option: the kernel
 * copies each read straight into the buffer the reader names, so a big
 * payload lands where it will stay, and no 64 KiB buffer is allocated per
 * read for the GC to collect. The socket is made before its reader: bytes
 * read until {@link bind} are held and handed over then. Node offers this
 * only on sockets it dials; {@link adoptForDirectReads} brings it to
 * accepted ones.
 */
export class DirectReads {
  #reader: ReadTarget | undefined;
  #early: ((chunk: Uint8Array) => void) | undefined;
  // Reads before bind() land here; the socket may hold it for one more read after.
  #scratch: Uint8Array | undefined;
  #held: Uint8Array[] = [];

  /** Pass as the socket's `onread` option. */
  readonly onread = {
    buffer: (): Uint8Array => {
      if (this.#reader !== undefined) return this.#reader.target();
      this.#scratch ??= Buffer.allocUnsafe(EARLY_BYTES);
      return this.#scratch;
    },
    // Node hands back the buffer it read into: the scratch one means a read from before bind().
    callback: (n: number, buf: Uint8Array): boolean => {
      if (buf !== this.#scratch) this.#reader!.filled(n);
      else if (this.#early !== undefined)
        this.#early(buf.subarray(0, n)); // never read into again
      else this.#held.push(Uint8Array.prototype.slice.call(buf, 0, n));
      return true;
    },
  };

  /**
   * `socket` reads with these (it was made with {@link onread}): the channel
   * made on it finds them there, so no constructor passes them down.
   */
  attach(socket: Duplex): void {
    bySocket.set(socket, this);
  }

  /** From now on reads go to `reader`; `early` gets what was read before, in order. */
  bind(reader: ReadTarget, early: (chunk: Uint8Array) => void): void {
    this.#reader = reader;
    this.#early = early;
    const held = this.#held;
    this.#held = [];
    for (const chunk of held) early(chunk);
  }
}

const bySocket = new WeakMap<Duplex, DirectReads>();

/** The DirectReads a socket was made with, if any (see {@link DirectReads.attach}). */
export function directReadsOf(socket: Duplex): DirectReads | undefined {
  return bySocket.get(socket);
}

// What of an accepted net.Socket the adoption moves: its handle and its server's count of it.
interface AcceptedInternals {
  _handle: object | null;
  _server: unknown;
  server: unknown;
}

/**
 * The connection of `accepted`, a socket a net.Server accepted and nothing
 * has read from, on a new socket made with `onread` (see
 * {@link DirectReads}). Without it a server reads into a fresh 64 KiB buffer
 * per read and copies each big payload out of those, twice the memory a
 * client-streamed 64 KiB message needs, and a server receiving 1 GB/s spent
 * 44 % of its CPU in the collections of those buffers.
 *
 * The new socket takes over the handle (as Node's own accept does, with the
 * `handle` option) and the server's count of the connection; `accepted` is
 * left without a handle and destroyed, which closes nothing. Undefined, with
 * `accepted` untouched, when it is not such a socket (no handle, or bytes
 * were read already). Only for sockets no one else holds: the caller's
 * references to `accepted` see a closed socket.
 */
export function adoptForDirectReads(accepted: Socket, onread: OnReadOpts): Socket | undefined {
  const old = accepted as unknown as AcceptedInternals;
  const handle = old._handle;
  if (handle === null || handle === undefined || accepted.bytesRead > 0 || accepted.readableLength > 0)
    return undefined;
  // Whether or not the handle reads already, the next read goes to the new
  // socket: it owns the handle and has set its buffer before Node reads again.
  const socket = new Socket({
    handle,
    readable: true,
    writable: true,
    allowHalfOpen: accepted.allowHalfOpen,
    onread,
  } as ConstructorParameters<typeof Socket>[0]);
  const adopted = socket as unknown as AcceptedInternals;
  adopted._server = old._server;
  adopted.server = old.server;
  old._server = null;
  old.server = null;
  old._handle = null;
  accepted.destroy();
  return socket;
}
