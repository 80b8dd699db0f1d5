import type { Duplex } from "node:stream";
import { FrameDecoder } from "./frame-decoder.js";
import { HEADER_LENGTH, writeHeader, type Frame } from "./frame.js";
import { Code } from "./code.js";
import type { ConnectionSettings } from "./connection-settings.js";
import { directReadsOf } from "./direct-reads.js";
import type { EncodedMessage } from "./message-codec.js";
import { closedError, protocolError, TtrpcError } from "./ttrpc-error.js";

/** What the owner of a channel (a client or a server connection) handles. */
export interface ChannelHandler {
  /** Every complete frame, in wire order. */
  frame(frame: Frame): void;
  /** A frame over the size limit, already skipped. */
  oversized(streamId: number, type: number, flags: number, length: number): void;
  /** The connection ended; `error` says why (its `reason`: peer-closed, local-closed, protocol-error...). */
  closed(error: TtrpcError): void;
  /** See FrameSink.wants: false skips the frame's bytes unread. */
  wants?(streamId: number, type: number): boolean;
}

// Frames written in one turn are batched up to this size before leaving.
const BATCH_BYTES = 64 * 1024;

// ...and up to this many buffers (a small frame is one). With a whole window
// of calls in one write, client and server take turns: one works through 64
// frames while the other waits. Smaller batches let the peer start on the
// first frames while this end makes the rest (unary, 64 in flight, 2 cores:
// 100k → 120–175k calls/s).
const BATCH_FRAMES = 16;

// Buffers below this size are copied to join their neighbours in a big write.
const JOIN_BELOW = 4 * 1024;

// How long a closing connection may take to hand its last frames to the peer.
const CLOSE_LINGER_MS = 1000;

// Big buffers go as they are; the small ones between them (frame headers,
// envelope and field prefixes) are joined, so a 64 KiB message is two
// buffers of one writev, not four.
function writeJoined(socket: Duplex, list: readonly Uint8Array[]): void {
  socket.cork();
  let start = 0;
  let small = 0;
  for (let i = 0; i <= list.length; i++) {
    const b = list[i];
    if (b !== undefined && b.length < JOIN_BELOW) {
      small += b.length;
      continue;
    }
    if (i - start === 1) socket.write(list[start]!);
    else if (i > start) socket.write(Buffer.concat(list.slice(start, i), small));
    if (b !== undefined) socket.write(b);
    start = i + 1;
    small = 0;
  }
  socket.uncork();
}

/**
 * One ttrpc connection: frames in, frames out, over any Duplex. Client and
 * server both sit on it. Writes made in one event-loop turn leave together,
 * a batch of up to 16 buffers per write, the last on nextTick: that, more
 * than anything, set the throughput. Writes never block the reader; senders
 * that care about the socket's buffer wait on `drained()`.
 */
export class Channel {
  readonly socket: Duplex;
  readonly #decoder: FrameDecoder;
  readonly #handler: ChannelHandler;
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #scheduled = false;
  #error: TtrpcError | undefined;
  #drainWaiters: (() => void)[] = [];
  readonly #throttleReads: boolean;
  #readsPaused = false;
  // False from a resume until the next read. Node's own reads go on under a
  // pause (into the socket's buffer, up to its high-water mark); a socket
  // made with onread stops reading at once. Pausing again before that read,
  // as a writer that refills the buffer on every drain makes it, would starve
  // the connection's other calls for as long as the writer goes on.
  #readSinceResume = true;

  constructor(socket: Duplex, handler: ChannelHandler, settings: ConnectionSettings) {
    this.socket = socket;
    this.#handler = handler;
    this.#throttleReads = settings.pauseReadsWhileWriteBlocked;
    this.#decoder = new FrameDecoder(
      {
        frame: (f) => handler.frame(f),
        oversized: (id, type, flags, length) => handler.oversized(id, type, flags, length),
        ...(handler.wants === undefined ? {} : { wants: handler.wants }),
      },
      settings.maxMessageSize,
    );
    // A socket dialed (or adopted) with DirectReads reads frames straight into place.
    const reads = directReadsOf(socket);
    if (reads === undefined) socket.on("data", this.#onData);
    else reads.bind({ target: () => this.#decoder.readTarget(), filled: this.#onFilled }, this.#onData);
    socket.on("end", this.#onEnd);
    socket.on("error", this.#onError);
    socket.on("close", this.#onClose);
    socket.on("drain", this.#onDrain);
  }

  get closed(): boolean {
    return this.#error !== undefined;
  }

  /** Why the channel ended; undefined while open. */
  get error(): TtrpcError | undefined {
    return this.#error;
  }

  /** True while the socket's write buffer is over its high-water mark. */
  get needsDrain(): boolean {
    return this.socket.writableNeedDrain;
  }

  /** Resolves once the socket's write buffer has room again (or the channel closed). */
  drained(): Promise<void> {
    if (!this.socket.writableNeedDrain || this.#error !== undefined) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  /** Queues buffers for writing; they leave together with everything else written this turn. */
  write(buffers: readonly Uint8Array[]): void {
    if (this.#error !== undefined) throw this.#error;
    for (const b of buffers) {
      this.#pending.push(b);
      this.#pendingBytes += b.length;
    }
    if (this.#pendingBytes >= BATCH_BYTES || this.#pending.length >= BATCH_FRAMES) this.#flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      process.nextTick(this.#flush);
    }
  }

  /** Writes a frame whose payload is already encoded (as one buffer or as parts). */
  writeFrame(streamId: number, type: number, flags: number, payload?: EncodedMessage): void {
    const len = payload?.length ?? 0;
    if (len <= 16 * 1024) {
      const buf = new Uint8Array(HEADER_LENGTH + len);
      writeHeader(buf, 0, len, streamId, type, flags);
      let pos = HEADER_LENGTH;
      for (const p of payload?.parts ?? []) {
        buf.set(p, pos);
        pos += p.length;
      }
      this.write([buf]);
      return;
    }
    const head = new Uint8Array(HEADER_LENGTH);
    writeHeader(head, 0, len, streamId, type, flags);
    this.write([head, ...payload!.parts]);
  }

  /**
   * Closes the connection; every stream on it fails with `error` (or
   * "ttrpc: closed", reason local-closed). Frames already written still leave first.
   */
  close(error?: TtrpcError): void {
    this.#finish(error ?? closedError("local-closed"), true);
  }

  // Small frames are joined into one buffer (one write, one syscall); big
  // payloads go as they are, corked into one writev, never copied.
  #flush = (): void => {
    this.#scheduled = false;
    const list = this.#pending;
    const bytes = this.#pendingBytes;
    if (list.length === 0) return;
    this.#pending = [];
    this.#pendingBytes = 0;
    const socket = this.socket;
    if (socket.destroyed) return;
    if (list.length === 1) socket.write(list[0]!);
    else if (bytes <= BATCH_BYTES) socket.write(Buffer.concat(list, bytes));
    else writeJoined(socket, list);
    if (this.#throttleReads && !this.#readsPaused && this.#readSinceResume && socket.writableNeedDrain) {
      this.#readsPaused = true;
      socket.pause();
    }
  };

  #onData = (chunk: Uint8Array): void => {
    this.#readSinceResume = true;
    if (this.#error !== undefined) return;
    try {
      this.#decoder.push(chunk);
    } catch (e) {
      this.#handlerFailed(e);
    }
  };

  #onFilled = (n: number): void => {
    this.#readSinceResume = true;
    if (this.#error !== undefined) return;
    try {
      this.#decoder.filled(n);
    } catch (e) {
      this.#handlerFailed(e);
    }
  };

  // A handler bug must end this connection, not the process.
  #handlerFailed(e: unknown): void {
    this.#finish(new TtrpcError("ttrpc: internal error handling a frame", Code.Internal, { cause: e }));
  }

  #onEnd = (): void => {
    if (this.#decoder.idle) this.#finish(closedError("peer-closed"));
    else this.#finish(protocolError("ttrpc: connection closed in the middle of a frame", Code.Unavailable));
  };

  #onError = (err: Error): void => {
    this.#finish(closedError("peer-closed", err));
  };

  // A close without an end: the transport went away (or someone destroyed the socket under us).
  #onClose = (): void => {
    this.#finish(closedError("peer-closed"));
  };

  #onDrain = (): void => {
    if (this.#readsPaused) {
      this.#readsPaused = false;
      this.#readSinceResume = false;
      if (this.#error === undefined) this.socket.resume();
    }
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const w of waiters) w();
  };

  #finish(error: TtrpcError, flush = false): void {
    if (this.#error !== undefined) return;
    this.#error = error;
    this.#onDrain();
    if (flush && !this.socket.destroyed && this.socket.writable) {
      this.#flush();
      // A peer that never reads must not hold the socket open for ever.
      const timer = setTimeout(() => this.socket.destroy(), CLOSE_LINGER_MS);
      this.socket.once("close", () => clearTimeout(timer));
      this.socket.end(() => this.socket.destroy());
    } else {
      this.socket.destroy();
    }
    this.#handler.closed(error);
  }
}
