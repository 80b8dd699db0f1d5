import { type DescMessage, fromBinary } from "@bufbuild/protobuf";

/** How far a stream's reader may fall behind; one object per connection, shared by its streams. */
export interface QueueLimits {
  /** Messages queued unread before the grace period starts. */
  readonly bufferSize: number;
  /** Bytes queued unread past which the stream fails at once. */
  readonly maxBytes: number;
  /** How long more than `bufferSize` messages may stay queued. */
  readonly graceMs: number;
}

type Resolve = (r: IteratorResult<unknown>) => void;
type Reject = (e: unknown) => void;

/**
 * The receive queue of one stream: the connection's reader pushes, the
 * consumer pulls in wire order, decoded as `decodeAs` when set. It never
 * blocks the reader: when the consumer falls behind, `full()` runs so that
 * only that stream fails (Go's ErrStreamFull), instead of stalling every
 * stream of the connection. One socket read can carry thousands of small
 * frames, so the count alone must not fail a stream: more than `bufferSize`
 * messages fail it only once they stayed queued for `graceMs`; more than
 * `maxBytes` fail it at once.
 *
 * Subclasses (a stream) override `full()` and `returned()`: hooks, not
 * closures, because one of these exists per open stream.
 */
export class MessageQueue implements AsyncIterableIterator<unknown> {
  // Made when a message first waits unread: a unary call's reply is taken as it arrives.
  #items: Uint8Array[] | undefined;
  #bytes = 0;
  #head = 0;
  #ended = false;
  #error: unknown = undefined;
  // A consumer waiting in next(): two fields, not an object, per stream.
  #resolve: Resolve | undefined;
  #reject: Reject | undefined;
  #graceTimer: NodeJS.Timeout | undefined;
  readonly #limits: QueueLimits;
  /** When set, the consumer gets messages of this type instead of bytes. */
  decodeAs: DescMessage | undefined;

  constructor(limits: QueueLimits) {
    this.#limits = limits;
  }

  /** More than the limits allow stayed unread. */
  protected full(): void {}

  /** The consumer stopped early (`break` out of a for-await, or a message it could not decode). */
  protected returned(): void {}

  /** Messages pushed and not yet taken. */
  get length(): number {
    return this.#items === undefined ? 0 : this.#items.length - this.#head;
  }

  get ended(): boolean {
    return this.#ended;
  }

  push(item: Uint8Array): void {
    if (this.#ended) return;
    const resolve = this.#resolve;
    if (resolve !== undefined) {
      const reject = this.#reject!;
      this.#resolve = this.#reject = undefined;
      try {
        resolve({ value: this.#decode(item), done: false });
      } catch (e) {
        void this.return();
        reject(e);
      }
      return;
    }
    this.#items ??= [];
    this.#items.push(item);
    this.#bytes += item.length;
    if (this.#bytes > this.#limits.maxBytes) this.full();
    else if (this.length > this.#limits.bufferSize && this.#graceTimer === undefined) {
      this.#graceTimer = setTimeout(checkFull, this.#limits.graceMs, this);
    }
  }

  /** Called by the grace timer. */
  checkFull(): void {
    this.#graceTimer = undefined;
    if (!this.#ended && this.length > this.#limits.bufferSize) this.full();
  }

  #stopTimer(): void {
    if (this.#graceTimer !== undefined) {
      clearTimeout(this.#graceTimer);
      this.#graceTimer = undefined;
    }
  }

  #drop(): void {
    this.#items = undefined;
    this.#head = 0;
    this.#bytes = 0;
  }

  /** Ends the queue: the consumer gets what is queued, then the end (or `error`). */
  end(error?: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = error;
    this.#stopTimer();
    const resolve = this.#resolve;
    if (resolve !== undefined && this.length === 0) {
      const reject = this.#reject!;
      this.#resolve = this.#reject = undefined;
      if (error === undefined) resolve({ value: undefined, done: true });
      else reject(error);
    }
  }

  /** Ends the queue at once, dropping what is queued. */
  fail(error: unknown): void {
    this.#drop();
    this.#ended = false;
    this.end(error);
  }

  #decode(item: Uint8Array): unknown {
    const desc = this.decodeAs;
    return desc === undefined ? item : fromBinary(desc, item);
  }

  // A message that does not decode ends the stream as a `break` would.
  #take(item: Uint8Array): Promise<IteratorResult<unknown>> {
    try {
      return Promise.resolve({ value: this.#decode(item), done: false });
    } catch (e) {
      void this.return();
      return Promise.reject(e);
    }
  }

  next(): Promise<IteratorResult<unknown>> {
    const items = this.#items;
    if (items !== undefined && this.#head < items.length) {
      const value = items[this.#head]!;
      this.#bytes -= value.length;
      (items as (Uint8Array | undefined)[])[this.#head] = undefined;
      this.#head++;
      if (this.#head === items.length) {
        items.length = 0;
        this.#head = 0;
      } else if (this.#head > 1024 && this.#head * 2 > items.length) {
        items.splice(0, this.#head);
        this.#head = 0;
      }
      return this.#take(value);
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
    if (this.#resolve !== undefined) return Promise.reject(new Error("concurrent next() on a stream"));
    return new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }

  return(): Promise<IteratorResult<unknown>> {
    if (!this.#ended) {
      this.#ended = true;
      this.#stopTimer();
      this.#drop();
      this.returned();
    }
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

function checkFull(queue: MessageQueue): void {
  queue.checkFull();
}
