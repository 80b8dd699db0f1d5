import { HEADER_LENGTH, type Frame } from "./frame.js";

// Payloads this big are read straight into place.
const DIRECT_MIN = 16 * 1024;
// What a read between big payloads may take at most, as Node's own reads.
const SCRATCH_BYTES = 64 * 1024;
// Where reads start: a slice of Node's buffer pool, so that a connection of
// small calls holds no 64 KiB buffer of its own (a server's 10,000 idle
// connections would hold 40 MB of their first pages); the first read that
// fills it brings the full size.
const FIRST_SCRATCH_BYTES = 2 * 1024;

// Small copies come from Node's buffer pool: cheaper than a typed array of their own.
function copy(view: Uint8Array): Uint8Array {
  const b = Buffer.allocUnsafe(view.length);
  b.set(view);
  return b;
}

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
  // Direct reads (see readTarget): the buffer reads land in between frames,
  // whether the last target was the body itself, and whether the last frame
  // was big enough to expect another.
  #scratch: Uint8Array | undefined;
  #intoBody = false;
  #bigLast = false;

  constructor(sink: FrameSink, maxMessageSize: number) {
    this.#sink = sink;
    this.#max = maxMessageSize;
  }

  /** True between frames: EOF here is a clean end, anywhere else a truncated frame. */
  get idle(): boolean {
    return this.#headerFill === 0 && !this.#inBody;
  }

  /**
   * Where the next read should land, for a socket that lets the reader name it
   * (net.Socket's `onread`): the rest of a big payload is read straight into
   * place, to its last byte; anything else lands in a scratch buffer this
   * decoder reuses. After a big frame only the next header is read, so that
   * its payload can land in place too. Follow each read with {@link filled}.
   */
  readTarget(): Uint8Array {
    const body = this.#body;
    // A body is only being filled while in one (and not while skipping).
    if (body !== undefined && body.length >= DIRECT_MIN) {
      this.#intoBody = true;
      return body.subarray(this.#bodyFill);
    }
    this.#intoBody = false;
    this.#scratch ??= Buffer.allocUnsafe(FIRST_SCRATCH_BYTES);
    if (this.#bigLast && this.idle) return this.#scratch.subarray(0, HEADER_LENGTH);
    return this.#scratch;
  }

  /** `n` bytes were read into the buffer {@link readTarget} returned last. */
  filled(n: number): void {
    if (!this.#intoBody) {
      const scratch = this.#scratch!;
      this.#push(scratch.subarray(0, n), true);
      if (n === scratch.length && n < SCRATCH_BYTES) this.#scratch = Buffer.allocUnsafe(SCRATCH_BYTES);
      return;
    }
    this.#bodyFill += n;
    const body = this.#body!;
    if (this.#bodyFill === body.length) {
      this.#inBody = false;
      this.#body = undefined;
      this.#emit(body);
    }
  }

  /** Feeds bytes as they arrive: any chunk boundary, several frames or part of one. */
  push(chunk: Uint8Array): void {
    this.#push(chunk, false);
  }

  // `reused`: the chunk's memory is read into again, so what is handed on is copied out of it.
  #push(chunk: Uint8Array, reused: boolean): void {
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
          const view = chunk.subarray(pos, pos + this.#length);
          this.#emit(reused ? copy(view) : view);
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
    this.#bigLast = this.#length >= DIRECT_MIN;
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
