/**
 * Frames of the memory stream (wire-protocol.ts) on and off a socket: one
 * frame written as one `writev`, and two readers, one for any socket and
 * one that reads Pages frames straight into the destination's memory.
 *
 * @module
 */
import type { Socket } from "node:net";
import {
  decodeRunList,
  FRAME_HEADER,
  Frame,
  MessageType,
  runCount,
  runListBytes,
  WIRE_VERSION,
  WireError,
} from "./wire-protocol.js";

/**
 * Writes the buffers as one frame (corked: one writev, no copy); resolves at
 * once or after 'drain'; rejects when the socket closes first.
 */
export function write(socket: Socket, ...data: Buffer[]): Promise<void> | undefined {
  if (socket.destroyed) return Promise.reject(new WireError("memory-transfer connection closed"));
  let ok = true;
  if (data.length === 1) ok = socket.write(data[0]!);
  else {
    socket.cork();
    for (const d of data) ok = socket.write(d);
    socket.uncork();
  }
  if (ok) return undefined;
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      socket.off("drain", onDrain);
      socket.off("close", onClose);
      if (err === undefined) resolve();
      else reject(err);
    };
    const onDrain = () => done();
    const onClose = () => done(new WireError("memory-transfer connection closed"));
    socket.on("drain", onDrain);
    socket.on("close", onClose);
  });
}

const HIGH_WATER = 16 * 1024 * 1024;

/** Where a reader may put the pages of Pages frames itself (the destination's memory). */
export interface PageSink {
  readonly pageSize: number;
  readonly pageCount: number;
  /** Checksum bytes a frame of this many pages carries. */
  sumBytes(pages: number): number;
  /** The memory of pages `first … first+count-1`; throws RangeError when out of range. */
  views(first: number, count: number): Buffer[];
}

/** Frames off one connection. */
export interface FrameSource {
  next(): Promise<Frame>;
  /** Set by the destination once the layout is agreed; a reader that can uses it. */
  sink?: PageSink | undefined;
}

/** Reads frames from a socket, with backpressure (pauses the socket when far ahead). */
export class FrameReader implements FrameSource {
  sink?: PageSink | undefined;
  readonly #socket: Socket;
  readonly #maxPayload: number;
  #chunks: Buffer[] = [];
  #length = 0;
  #error: Error | undefined;
  #wake: (() => void) | undefined;

  constructor(socket: Socket, options: { maxPayload: number }) {
    this.#socket = socket;
    this.#maxPayload = options.maxPayload;
    socket.on("data", (chunk: Buffer) => {
      this.#chunks.push(chunk);
      this.#length += chunk.length;
      if (this.#length > HIGH_WATER) socket.pause();
      this.#notify();
    });
    socket.on("error", (err) => this.#fail(new WireError(`memory-transfer connection failed: ${err.message}`)));
    socket.on("close", () => this.#fail(new WireError("memory-transfer connection closed by the peer")));
    socket.on("end", () => this.#fail(new WireError("memory-transfer connection closed by the peer")));
  }

  #fail(err: Error): void {
    this.#error ??= err;
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** The next frame; rejects with a WireError when the stream ends or is malformed. */
  async next(): Promise<Frame> {
    for (;;) {
      if (this.#length >= FRAME_HEADER) {
        const header = this.#peek(FRAME_HEADER);
        if (header[0] !== WIRE_VERSION) throw new WireError(`memory stream: unsupported protocol version ${header[0]}`);
        const type = header[1]!;
        if (MessageType[type] === undefined) throw new WireError(`memory stream: unknown message type ${type}`);
        const length = header.readUInt32BE(2);
        if (length > this.#maxPayload)
          throw new WireError(`memory stream: frame of ${length} bytes is over the ${this.#maxPayload}-byte limit`);
        if (this.#length >= FRAME_HEADER + length) {
          this.#take(FRAME_HEADER);
          const parts = this.#take(length);
          if (this.#length < HIGH_WATER && this.#socket.isPaused()) this.#socket.resume();
          return new Frame(type, parts, length);
        }
      }
      if (this.#error !== undefined) throw this.#error;
      if (this.#socket.isPaused()) this.#socket.resume();
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  #peek(n: number): Buffer {
    const first = this.#chunks[0]!;
    if (first.length >= n) return first;
    return Buffer.concat(this.#chunks, Math.min(this.#length, Math.max(n, 64))).subarray(0, n);
  }

  // The next n bytes as slices of the received chunks (no copy).
  #take(n: number): Buffer[] {
    this.#length -= n;
    const out: Buffer[] = [];
    for (let left = n; left > 0; ) {
      const c = this.#chunks[0]!;
      if (c.length > left) {
        out.push(c.subarray(0, left));
        this.#chunks[0] = c.subarray(left);
        break;
      }
      out.push(c);
      this.#chunks.shift();
      left -= c.length;
    }
    return out;
  }
}

type ReadState = "head" | "payload" | "runs" | "list" | "sums" | "data" | "scatter";

/**
 * Pages in views smaller than this on average are read in one go and copied: a read per small view costs more than a
 * copy.
 */
const DIRECT_VIEW_BYTES = 64 * 1024;

/**
 * Reads frames from a socket made with its `onread`: the kernel copies each
 * read straight into the buffer this reader names, so the pages of a Pages
 * frame land in the destination's memory with no copy and no garbage (Node
 * offers this only on sockets it dials, not on accepted ones).
 */
export class DirectFrameReader implements FrameSource {
  sink?: PageSink | undefined;
  readonly #maxPayload: number;
  readonly #frames: Frame[] = [];
  #error: Error | undefined;
  #wake: (() => void) | undefined;
  #socket: Socket | undefined;
  readonly #head = Buffer.alloc(FRAME_HEADER);
  #target: Buffer = this.#head;
  #filled = 0;
  #state: ReadState = "head";
  #type: MessageType = MessageType.Hello;
  #length = 0;
  /** Run list (and checksums) of the Pages frame being read. */
  #list: Buffer = this.#head;
  #views: Buffer[] = [];
  #view = 0;
  #scratch = Buffer.alloc(0);

  /** Pass as the socket's `onread` option. */
  readonly onread = {
    buffer: (): Buffer => (this.#error === undefined ? this.#target.subarray(this.#filled) : this.#head),
    callback: (n: number): boolean => {
      if (this.#error !== undefined) return false;
      this.#filled += n;
      try {
        while (this.#filled === this.#target.length && this.#error === undefined) this.#complete();
      } catch (err) {
        this.#fail(err instanceof WireError ? err : new WireError(`memory stream: ${(err as Error).message}`));
        this.#socket?.destroy();
      }
      return true;
    },
  };

  constructor(options: { maxPayload: number }) {
    this.#maxPayload = options.maxPayload;
  }

  /** Watches the socket made with {@link onread} for its end. */
  attach(socket: Socket): void {
    this.#socket = socket;
    socket.on("error", (err) => this.#fail(new WireError(`memory-transfer connection failed: ${err.message}`)));
    socket.on("close", () => this.#fail(new WireError("memory-transfer connection closed by the peer")));
    socket.on("end", () => this.#fail(new WireError("memory-transfer connection closed by the peer")));
  }

  #expect(state: ReadState, target: Buffer, filled = 0): void {
    this.#state = state;
    this.#target = target;
    this.#filled = filled;
  }

  #push(frame: Frame): void {
    this.#frames.push(frame);
    this.#expect("head", this.#head);
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #complete(): void {
    switch (this.#state) {
      case "head": {
        const h = this.#head;
        if (h[0] !== WIRE_VERSION) throw new WireError(`memory stream: unsupported protocol version ${h[0]}`);
        if (MessageType[h[1]!] === undefined) throw new WireError(`memory stream: unknown message type ${h[1]}`);
        this.#type = h[1]!;
        this.#length = h.readUInt32BE(2);
        if (this.#length > this.#maxPayload)
          throw new WireError(
            `memory stream: frame of ${this.#length} bytes is over the ${this.#maxPayload}-byte limit`,
          );
        if (this.#type === MessageType.Pages && this.sink !== undefined && this.#length >= 4)
          this.#expect("runs", Buffer.allocUnsafe(4));
        else this.#expect("payload", Buffer.allocUnsafe(this.#length));
        return;
      }
      case "payload":
        this.#push(new Frame(this.#type, [this.#target], this.#length));
        return;
      case "runs": {
        const listBytes = runListBytes(runCount(this.#target));
        if (listBytes > this.#length) throw new WireError(`memory stream: Pages frame of ${this.#length} bytes`);
        const list = Buffer.allocUnsafe(listBytes);
        this.#target.copy(list);
        this.#expect("list", list, 4);
        return;
      }
      case "list": {
        const sink = this.sink!;
        const list = this.#target;
        const { runs, pages } = decodeRunList(list, sink.pageCount);
        this.#views = [];
        for (let r = 0; r < runs.length; r += 2) this.#views.push(...sink.views(runs[r]!, runs[r + 1]!));
        const sumBytes = sink.sumBytes(pages);
        if (this.#length !== list.length + sumBytes + pages * sink.pageSize)
          throw new WireError(`memory stream: Pages frame of ${this.#length} bytes does not hold ${pages} pages`);
        this.#list = list;
        if (sumBytes === 0) {
          this.#data();
          return;
        }
        const withSums = Buffer.allocUnsafe(list.length + sumBytes);
        list.copy(withSums);
        this.#list = withSums;
        this.#expect("sums", withSums, list.length);
        return;
      }
      case "sums":
        this.#data();
        return;
      case "data":
        this.#view++;
        this.#dataView();
        return;
      case "scatter": {
        let at = 0;
        for (const view of this.#views) at += this.#target.copy(view, 0, at, at + view.length);
        this.#views = [];
        this.#dataView();
        return;
      }
    }
  }

  #data(): void {
    this.#view = 0;
    const bytes = this.#views.reduce((n, v) => n + v.length, 0);
    if (this.#views.length > 1 && bytes / this.#views.length < DIRECT_VIEW_BYTES) {
      if (this.#scratch.length < bytes) this.#scratch = Buffer.allocUnsafeSlow(bytes);
      this.#expect("scatter", this.#scratch.subarray(0, bytes));
      return;
    }
    this.#dataView();
  }

  #dataView(): void {
    const view = this.#views[this.#view];
    if (view !== undefined) {
      this.#expect("data", view);
      return;
    }
    this.#push(new Frame(MessageType.Pages, [this.#list], this.#list.length, true));
  }

  #fail(err: Error): void {
    this.#error ??= err;
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async next(): Promise<Frame> {
    for (;;) {
      const frame = this.#frames.shift();
      if (frame !== undefined) return frame;
      if (this.#error !== undefined) throw this.#error;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }
}
