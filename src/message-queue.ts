/**
 * The receive queue of one stream: the connection's reader pushes, the
 * consumer pulls in wire order. It never blocks the reader: when the consumer
 * falls `limit` messages behind, `push` reports it so the owner can give the
 * consumer a grace period and then fail only that stream (Go's ErrStreamFull),
 * instead of stalling every stream of the connection.
 */
export class MessageQueue implements AsyncIterableIterator<Uint8Array> {
  readonly #items: Uint8Array[] = [];
  #bytes = 0;
  #head = 0;
  #ended = false;
  #error: unknown = undefined;
  #waiter: { resolve: (r: IteratorResult<Uint8Array>) => void; reject: (e: unknown) => void } | undefined;
  readonly #onReturn: (() => void) | undefined;
  readonly #limit: number;
  readonly #maxBytes: number;
  readonly #graceMs: number;
  readonly #onFull: (() => void) | undefined;
  #graceTimer: NodeJS.Timeout | undefined;

  /**
   * `onReturn` runs when the consumer stops early (`break` out of a
   * for-await); `onFull` when more than `limit` messages stayed queued for
   * `graceMs`, or at once when more than `maxBytes` are queued. One socket
   * read can carry thousands of small frames, so the count alone must not
   * fail a stream: a reader that keeps up drains them before the next read.
   */
  constructor(
    options: { onReturn?: () => void; limit?: number; maxBytes?: number; graceMs?: number; onFull?: () => void } = {},
  ) {
    this.#onReturn = options.onReturn;
    this.#limit = options.limit ?? Infinity;
    this.#maxBytes = options.maxBytes ?? Infinity;
    this.#graceMs = options.graceMs ?? 1000;
    this.#onFull = options.onFull;
  }

  /** Messages pushed and not yet taken. */
  get length(): number {
    return this.#items.length - this.#head;
  }

  get ended(): boolean {
    return this.#ended;
  }

  push(item: Uint8Array): void {
    if (this.#ended) return;
    const w = this.#waiter;
    if (w !== undefined) {
      this.#waiter = undefined;
      w.resolve({ value: item, done: false });
      return;
    }
    this.#items.push(item);
    this.#bytes += item.length;
    if (this.#bytes > this.#maxBytes) this.#onFull?.();
    else if (this.length > this.#limit && this.#graceTimer === undefined) {
      this.#graceTimer = setTimeout(this.#checkFull, this.#graceMs);
    }
  }

  #checkFull = (): void => {
    this.#graceTimer = undefined;
    if (!this.#ended && this.length > this.#limit) this.#onFull?.();
  };

  #stopTimer(): void {
    if (this.#graceTimer !== undefined) {
      clearTimeout(this.#graceTimer);
      this.#graceTimer = undefined;
    }
  }

  /** Ends the queue: the consumer gets what is queued, then the end (or `error`). */
  end(error?: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = error;
    this.#stopTimer();
    const w = this.#waiter;
    if (w !== undefined && this.length === 0) {
      this.#waiter = undefined;
      if (error === undefined) w.resolve({ value: undefined, done: true });
      else w.reject(error);
    }
  }

  /** Ends the queue at once, dropping what is queued. */
  fail(error: unknown): void {
    this.#items.length = 0;
    this.#head = 0;
    this.#bytes = 0;
    this.#ended = false;
    this.end(error);
  }

  next(): Promise<IteratorResult<Uint8Array>> {
    if (this.#head < this.#items.length) {
      const value = this.#items[this.#head]!;
      this.#bytes -= value.length;
      (this.#items as (Uint8Array | undefined)[])[this.#head] = undefined;
      this.#head++;
      if (this.#head === this.#items.length) {
        this.#items.length = 0;
        this.#head = 0;
      } else if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
        this.#items.splice(0, this.#head);
        this.#head = 0;
      }
      return Promise.resolve({ value, done: false });
    }
    if (this.#ended) {
      if (this.#error !== undefined) {
        const e = this.#error;
        // Report a failure once; afterwards the iterator is simply done.
        this.#error = undefined;
        return Promise.reject(e);
      }
      return Promise.resolve({ value: undefined, done: true });
    }
    if (this.#waiter !== undefined) return Promise.reject(new Error("concurrent next() on a stream"));
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<Uint8Array>> {
    if (!this.#ended) {
      this.#ended = true;
      this.#stopTimer();
      this.#items.length = 0;
      this.#head = 0;
      this.#bytes = 0;
      this.#onReturn?.();
    }
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/** Bytes one stream may hold unread before it fails at once, whatever the grace period. */
export function streamMaxBytes(maxMessageSize: number): number {
  return Math.max(4 * maxMessageSize, 16 << 20);
}
