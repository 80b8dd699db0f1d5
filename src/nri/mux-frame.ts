// The frame of NRI's connection multiplexer (containerd/nri pkg/net/multiplex):
// every rule of its wire format lives here.

/** Header of a mux frame: connection id (uint32 BE), then payload length (uint32 BE). */
export const MUX_HEADER_LENGTH = 8;

/** Go's mux refuses to write a payload over 16 MiB (EMSGSIZE); we refuse to read one. */
export const MAX_MUX_PAYLOAD = 1 << 24;

/** Id 0 is reserved: Go's `Open(0)` fails, so frames for it are never delivered. */
export const RESERVED_CONN_ID = 0;

/** Runtime→plugin calls: the plugin serves ttrpc on this connection. */
export const PLUGIN_SERVICE_CONN = 1;

/** Plugin→runtime calls: the plugin is a ttrpc client on this connection. */
export const RUNTIME_SERVICE_CONN = 2;

/** Go's per-connection read queue length (frames, not bytes); overflow closes the trunk. */
export const DEFAULT_READ_QUEUE_LENGTH = 256;

/** The 8-byte header of a frame carrying `length` bytes for connection `id`. */
export function encodeMuxHeader(id: number, length: number): Buffer {
  const header = Buffer.allocUnsafe(MUX_HEADER_LENGTH);
  header.writeUInt32BE(id, 0);
  header.writeUInt32BE(length, 4);
  return header;
}

/** Where a {@link MuxFrameDecoder} hands on what it decodes. */
export interface MuxFrameSink {
  /** A slice of one frame's payload; `end` is true on its last slice. */
  data(id: number, bytes: Buffer, end: boolean): void;
}

/**
 * Incremental mux frame decoder: trunk bytes in any split or coalescing.
 * Payload slices are handed on as they arrive (views, no copy), so a 4 MiB
 * frame is never assembled here; the connection's own ttrpc decoder does that.
 * Throws {@link MuxFrameError} on a frame no Go peer can send.
 */
export class MuxFrameDecoder {
  readonly #sink: MuxFrameSink;
  readonly #header = Buffer.alloc(MUX_HEADER_LENGTH);
  #headerFill = 0;
  #id = 0;
  #left = 0;
  #inPayload = false;

  constructor(sink: MuxFrameSink) {
    this.#sink = sink;
  }

  /** True between frames: a trunk that ends here ended cleanly. */
  get idle(): boolean {
    return !this.#inPayload && this.#headerFill === 0;
  }

  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (!this.#inPayload) {
        const n = Math.min(MUX_HEADER_LENGTH - this.#headerFill, chunk.length - at);
        chunk.copy(this.#header, this.#headerFill, at, at + n);
        this.#headerFill += n;
        at += n;
        if (this.#headerFill < MUX_HEADER_LENGTH) return;
        this.#headerFill = 0;
        this.#id = this.#header.readUInt32BE(0);
        this.#left = this.#header.readUInt32BE(4);
        if (this.#left > MAX_MUX_PAYLOAD) {
          throw new MuxFrameError(
            `nri mux: frame for connection ${this.#id} announces ${this.#left} bytes, ` +
              `over the ${MAX_MUX_PAYLOAD}-byte limit`,
          );
        }
        this.#inPayload = true;
        if (this.#left === 0) {
          // Go's reader queues an empty frame as a zero-length read; there is nothing to deliver.
          this.#inPayload = false;
          this.#sink.data(this.#id, chunk.subarray(at, at), true);
          continue;
        }
      }
      const n = Math.min(this.#left, chunk.length - at);
      this.#left -= n;
      const end = this.#left === 0;
      if (end) this.#inPayload = false;
      this.#sink.data(this.#id, chunk.subarray(at, at + n), end);
      at += n;
    }
  }
}

/** A malformed mux frame, or a peer that breaks the mux's rules (queue overflow). */
export class MuxFrameError extends Error {
  override name = "MuxFrameError";
}
