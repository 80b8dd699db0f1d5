import { HEADER_LENGTH } from "../frame.js";
import { MAX_MUX_PAYLOAD } from "./mux-frame.js";

/**
 * The size of the buffered reader Go ttrpc reads a connection through
 * (bufio.NewReader's default).
 */
export const GO_READ_BUFFER = 4096;

/**
 * Cuts one connection's outgoing ttrpc byte stream into mux frame payloads
 * that a Go peer can read.
 *
 * Why: Go's mux `Read` returns one whole frame and fails with ENOMEM when the
 * caller's buffer is smaller. Go ttrpc reads through bufio.Reader (4096
 * bytes), which reads from the mux only when its buffer is empty, and then
 * either into its own 4096-byte buffer (when ReadFull wants fewer than 4096
 * bytes) or straight into the caller's slice (when it wants 4096 or more).
 * So a frame that starts where ReadFull still wants `R` bytes is safe when it
 * is at most max(4096, R) long. R is what is left of the current 10-byte
 * header or payload; this class follows the ttrpc headers to know it. For
 * whole-frame writes it cuts exactly where Go's own bufio.Writer does: the
 * first 4096 bytes, then the rest of the payload in one frame.
 */
export class GoReadSplitter {
  readonly #header = Buffer.alloc(HEADER_LENGTH);
  #headerFill = 0;
  // Payload bytes left in the current ttrpc frame.
  #payloadLeft = 0;

  /** Splits `chunk` (any slice of the ttrpc byte stream) into frame payloads, in order. */
  split(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let at = 0;
    while (at < chunk.length) {
      const limit = Math.min(Math.max(GO_READ_BUFFER, this.#payloadLeft), MAX_MUX_PAYLOAD);
      const end = Math.min(chunk.length, at + limit);
      out.push(chunk.subarray(at, end));
      this.#follow(chunk, at, end);
      at = end;
    }
    return out;
  }

  // Advances the ttrpc frame position over chunk[from, to).
  #follow(chunk: Buffer, from: number, to: number): void {
    let at = from;
    while (at < to) {
      if (this.#payloadLeft > 0) {
        const n = Math.min(this.#payloadLeft, to - at);
        this.#payloadLeft -= n;
        at += n;
        continue;
      }
      const n = Math.min(HEADER_LENGTH - this.#headerFill, to - at);
      chunk.copy(this.#header, this.#headerFill, at, at + n);
      this.#headerFill += n;
      at += n;
      if (this.#headerFill === HEADER_LENGTH) {
        this.#headerFill = 0;
        this.#payloadLeft = this.#header.readUInt32BE(0);
      }
    }
  }
}
