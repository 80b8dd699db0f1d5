import { Duplex } from "node:stream";
import { GoReadSplitter } from "./go-read-splitter.js";
import {
  DEFAULT_READ_QUEUE_LENGTH,
  encodeMuxHeader,
  MuxFrameDecoder,
  MuxFrameError,
  RESERVED_CONN_ID,
} from "./mux-frame.js";

/** Options of {@link createMultiplexer}. */
export interface MultiplexerOptions {
  /**
   * Frames each connection may hold unread (Go's WithReadQueueLength, default
   * 256). One more closes the trunk and every connection, as Go's mux does.
   */
  readQueueLength?: number;
}

/**
 * Several byte streams over one socket, framed as containerd/nri's
 * pkg/net/multiplex frames them. Opening a connection sends nothing: both
 * ends open the ids they agreed on (1 and 2 for NRI).
 */
export interface Multiplexer {
  /** The Duplex for connection `id` (the same one on every call until it is destroyed). */
  open(id: number): Duplex;
  /** Closes the trunk and every connection; `error` (if any) reaches their readers. */
  close(error?: Error): void;
  readonly closed: boolean;
  /** Resolves once the trunk is closed, with the reason (undefined for a clean end). */
  readonly done: Promise<Error | undefined>;
}

/** Wraps `trunk` (a connected socket) in a multiplexer. */
export function createMultiplexer(trunk: Duplex, options: MultiplexerOptions = {}): Multiplexer {
  return new Mux(trunk, options.readQueueLength ?? DEFAULT_READ_QUEUE_LENGTH);
}

class Mux implements Multiplexer {
  readonly #trunk: Duplex;
  readonly #queueLength: number;
  readonly #conns = new Map<number, MuxConnection>();
  readonly #decoder: MuxFrameDecoder;
  #closed = false;
  #resolve!: (e: Error | undefined) => void;
  readonly done = new Promise<Error | undefined>((r) => {
    this.#resolve = r;
  });

  constructor(trunk: Duplex, queueLength: number) {
    if (!Number.isInteger(queueLength) || queueLength < 1) {
      throw new RangeError(`nri mux: readQueueLength must be a positive integer, got ${queueLength}`);
    }
    this.#trunk = trunk;
    this.#queueLength = queueLength;
    this.#decoder = new MuxFrameDecoder({
      data: (id, bytes, end) => this.#conns.get(id)?.deliver(bytes, end),
    });
    trunk.on("data", (chunk: Buffer) => {
      try {
        this.#decoder.push(chunk);
      } catch (e) {
        this.close(e as Error);
      }
    });
    trunk.on("end", () => {
      this.close(this.#decoder.idle ? undefined : new MuxFrameError("nri mux: trunk ended inside a frame"));
    });
    trunk.on("error", (e) => this.close(e));
    trunk.on("close", () => this.close());
  }

  get closed(): boolean {
    return this.#closed;
  }

  open(id: number): Duplex {
    if (!Number.isInteger(id) || id <= RESERVED_CONN_ID || id > 0xffff_ffff) {
      throw new RangeError(`nri mux: connection id ${id} is reserved or out of range (1..2^32-1)`);
    }
    if (this.#closed) throw new MuxFrameError("nri mux: closed");
    let conn = this.#conns.get(id);
    if (conn === undefined) {
      conn = new MuxConnection(id, this, this.#queueLength);
      this.#conns.set(id, conn);
    }
    return conn;
  }

  /** Writes frames for `id`; calls `cb` once the trunk can take more. */
  write(id: number, payloads: Buffer[], cb: (e?: Error | null) => void): void {
    if (this.#closed) {
      cb(new MuxFrameError("nri mux: closed"));
      return;
    }
    let ok = true;
    this.#trunk.cork();
    for (const p of payloads) {
      this.#trunk.write(encodeMuxHeader(id, p.length));
      ok = this.#trunk.write(p);
    }
    this.#trunk.uncork();
    if (ok) cb();
    else this.#trunk.once("drain", () => cb());
  }

  forget(conn: MuxConnection): void {
    if (this.#conns.get(conn.id) === conn) this.#conns.delete(conn.id);
  }

  overflow(id: number): void {
    this.close(new MuxFrameError(`nri mux: read queue of connection ${id} overflowed (${this.#queueLength} frames)`));
  }

  close(error?: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const conn of this.#conns.values()) conn.trunkClosed(error);
    this.#conns.clear();
    this.#trunk.destroy();
    this.#resolve(error);
  }
}

// One multiplexed connection. Its readable side holds at most `queueLength`
// frames the reader has not taken yet (Go's bounded channel); its writable side
// cuts the ttrpc byte stream as a Go reader needs it.
class MuxConnection extends Duplex {
  readonly id: number;
  readonly #mux: Mux;
  readonly #queueLength: number;
  readonly #splitter = new GoReadSplitter();
  // Unread frames; the last one may still be filling.
  readonly #queue: Buffer[][] = [];
  #filling = false;
  #wanted = false;

  constructor(id: number, mux: Mux, queueLength: number) {
    super({ allowHalfOpen: false });
    this.id = id;
    this.#mux = mux;
    this.#queueLength = queueLength;
  }

  deliver(bytes: Buffer, end: boolean): void {
    if (!this.#filling) {
      if (this.#queue.length >= this.#queueLength) {
        this.#mux.overflow(this.id);
        return;
      }
      this.#queue.push([]);
      this.#filling = true;
    }
    if (bytes.length > 0) this.#queue[this.#queue.length - 1]!.push(bytes);
    if (end) this.#filling = false;
    this.#flush();
  }

  #flush(): void {
    while (this.#wanted && this.#queue.length > 0) {
      if (this.#queue.length === 1 && this.#filling) {
        // A frame still arriving: hand on what is here, keep its slot.
        const parts = this.#queue[0]!;
        if (parts.length === 0) return;
        this.#queue[0] = [];
        for (const p of parts) this.#wanted = this.push(p);
        return;
      }
      const parts = this.#queue.shift()!;
      for (const p of parts) this.#wanted = this.push(p);
    }
  }

  override _read(): void {
    this.#wanted = true;
    this.#flush();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.#mux.write(this.id, this.#splitter.split(chunk), cb);
  }

  override _final(cb: (e?: Error | null) => void): void {
    // Go's mux has no half-close: ending a connection sends nothing.
    cb();
  }

  override _destroy(error: Error | null, cb: (e?: Error | null) => void): void {
    this.#mux.forget(this);
    cb(error);
  }

  trunkClosed(error: Error | undefined): void {
    if (error !== undefined) {
      this.destroy(error);
      return;
    }
    // A clean end: what arrived is still read, then the reader sees EOF.
    for (const parts of this.#queue.splice(0)) for (const p of parts) this.push(p);
    this.push(null);
  }
}
