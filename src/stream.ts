import { Flags } from "./frame.js";
import { MessageQueue, type QueueLimits } from "./message-queue.js";

/** Messages a stream may hold unread before its grace period starts (Go: 64). */
export const DEFAULT_STREAM_BUFFER_SIZE = 64;
/** How long an over-full stream waits for its reader before it fails (Go: 1 s). */
export const DEFAULT_STREAM_FULL_GRACE_MS = 1000;

/**
 * What a stream sees of the table that holds it (`StreamTable`): the queue
 * limits of its connection, and the way out when it finishes.
 */
export interface StreamHost {
  readonly limits: QueueLimits;
  delete(stream: Stream): void;
}

/**
 * One stream of a connection, as either end holds it: its ID, its receive
 * queue (the stream is its own queue, one object per stream) and its entry
 * in the connection's table. A client call and a server call extend it.
 */
export class Stream extends MessageQueue {
  /** Out of the table: nothing more is sent or delivered for it. */
  finished = false;
  /** The peer closed its send side (RemoteClosed). */
  remoteClosed = false;

  constructor(
    readonly id: number,
    readonly table: StreamHost,
  ) {
    super(table.limits);
  }

  /**
   * A Data frame for this stream: its payload is a message unless NoData is
   * set (an empty payload is a message too); RemoteClosed ends the receive
   * side after it. What a frame may not carry is the receiver's check.
   */
  receiveData(flags: number, payload: Uint8Array): void {
    if ((flags & Flags.NoData) === 0) this.push(payload);
    if ((flags & Flags.RemoteClosed) !== 0) {
      this.remoteClosed = true;
      this.end();
    }
  }

  /** Takes the stream out of its table, once; `finished(reason)` runs then. */
  finish(reason?: unknown): void {
    if (this.finished) return;
    this.finished = true;
    this.table.delete(this);
    this.onFinish(reason);
  }

  /** Ends the stream: its reader gets what is queued, then the end or `error`. */
  close(error?: unknown): void {
    this.finish(error);
    this.end(error);
  }

  /** Ends the stream at once, dropping what is queued. */
  cancel(error: unknown): void {
    this.finish(error);
    this.fail(error);
  }

  /** Runs once when the stream leaves the table. */
  protected onFinish(_reason: unknown): void {}
}
