import { HEADER_LENGTH, type Frame } from "./frame.js";

/** What a {@link FrameDecoder} hands on. */
export interface FrameSink {
  /** Called once per whole frame, in arrival order. */
  frame(frame: Frame): void;
  /**
   * A frame whose payload is over the limit. Its bytes were skipped without
   * being buffered, so the connection stays usable; only that stream fails.
   */
  oversized(streamId: number, type: number, flags: number, length: number): void;
  /**
   * Asked at each header: false means nobody wants this frame (Data for a
   * stream the client gave up on), so its bytes are skipped unread.
   */
  wants?(streamId: number, type: number): boolean;
}

/**
 * Incremental ttrpc frame decoder: bytes in any split or coalescing, frames
 * out in wire order. A payload wholly inside one chunk is handed on as a view
 * of that chunk (no copy); one spread over chunks is assembled once. A header
 * announcing more than `maxMessageSize` allocates nothing: its bytes are
 * counted off as they arrive.
 */
export class FrameDecoder {
  readonly #sink: FrameSink;
  readonly #max: number;
  readonly #header = new Uint8Array(HEADER_LENGTH);
  #headerFill = 0;
  #length = 0;
  #streamId = 0;
  #type = 0;
  #flags = 0;
  // Payload being assembled across chunks, or bytes left to skip.
  #body: Uint8Array | undefined;
  #bodyFill = 0;
  #skip = 0;
  #discard = false;
  #inBody = false;

  constructor(sink: FrameSink, maxMessageSize: number) {
    this.#sink = sink;
    this.#max = maxMessageSize;
  }

  /** True between frames: EOF here is a clean end, anywhere else a truncated frame. */
  get idle(): boolean {
    return this.#headerFill === 0 && !this.#inBody;
  }

  /** Feeds bytes as they arrive: any chunk boundary, several frames or part of one. */
  push(chunk: Uint8Array): void {
    let pos = 0;
    const end = chunk.length;
    while (pos < end) {
      if (!this.#inBody) {
        if (this.#headerFill === 0 && end - pos >= HEADER_LENGTH) {
          this.#parseHeader(chunk, pos);
          pos += HEADER_LENGTH;
        } else {
          const n = Math.min(HEADER_LENGTH - this.#headerFill, end - pos);
          this.#header.set(chunk.subarray(pos, pos + n), this.#headerFill);
          this.#headerFill += n;
          pos += n;
          if (this.#headerFill < HEADER_LENGTH) return;
          this.#headerFill = 0;
          this.#parseHeader(this.#header, 0);
        }
        if (this.#skip === 0 && this.#length === 0) {
          this.#emit(new Uint8Array(0));
          continue;
        }
        if (this.#skip === 0 && end - pos >= this.#length) {
          this.#emit(chunk.subarray(pos, pos + this.#length));
          pos += this.#length;
          continue;
        }
        this.#inBody = true;
        if (this.#skip === 0) {
          // Every byte is about to be overwritten: no need to zero-fill.
          this.#body = Buffer.allocUnsafe(this.#length);
          this.#bodyFill = 0;
        }
      }
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, end - pos);
        this.#skip -= n;
        pos += n;
        if (this.#skip === 0) {
          this.#inBody = false;
          if (!this.#discard) this.#sink.oversized(this.#streamId, this.#type, this.#flags, this.#length);
        }
        continue;
      }
      const body = this.#body!;
      const n = Math.min(body.length - this.#bodyFill, end - pos);
      body.set(chunk.subarray(pos, pos + n), this.#bodyFill);
      this.#bodyFill += n;
      pos += n;
      if (this.#bodyFill === body.length) {
        this.#inBody = false;
        this.#body = undefined;
        this.#emit(body);
      }
    }
  }

  #parseHeader(b: Uint8Array, o: number): void {
    this.#length = ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
    this.#streamId = ((b[o + 4]! << 24) | (b[o + 5]! << 16) | (b[o + 6]! << 8) | b[o + 7]!) >>> 0;
    this.#type = b[o + 8]!;
    this.#flags = b[o + 9]!;
    this.#discard = false;
    if (this.#length > this.#max) {
      this.#skip = this.#length;
    } else if (this.#length > 0 && this.#sink.wants?.(this.#streamId, this.#type) === false) {
      this.#discard = true;
      this.#skip = this.#length;
    }
  }

  #emit(payload: Uint8Array): void {
    this.#sink.frame({ streamId: this.#streamId, type: this.#type, flags: this.#flags, payload });
  }
}
