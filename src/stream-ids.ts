import { Code } from "./code.js";
import { ErrorReason } from "./error-reason.js";
import { TtrpcError } from "./ttrpc-error.js";

const LAST_ID = 0xffffffff;

/**
 * A client's stream IDs: odd, strictly increasing, never reused. After the
 * last one (2^32-1) the connection can open no more streams, as in Go.
 */
export class StreamIds {
  #next: number;

  constructor(first = 1) {
    this.#next = first;
  }

  /** The ID the next stream will get; throws, reason ids-exhausted, when none is left. */
  peek(): number {
    if (this.#next > LAST_ID) {
      throw new TtrpcError("ttrpc: stream IDs exhausted; open a new connection", Code.Unavailable, {
        reason: ErrorReason.IdsExhausted,
      });
    }
    return this.#next;
  }

  /** Uses up the ID `peek` returned (once its Request is encoded). */
  take(): void {
    this.#next += 2;
  }
}
