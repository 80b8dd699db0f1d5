/**
 * The control messages of a memory transfer, as either side reads them from
 * its first channel: the peer's Abort becomes a {@link PeerAbort}, and a
 * failure anywhere else in the transfer (a data channel, a worker) ends the
 * wait for the next message at once.
 *
 * @module
 */
import type { FrameSource } from "./frame-io.js";
import type { Link } from "./transfer-link.js";
import { type AbortReason, decodeAbort, type Frame, MessageType, WireError } from "./wire-protocol.js";

/** The peer sent Abort: it stops, for this reason. */
export class PeerAbort extends Error {
  override name = "PeerAbort";
  readonly reason: AbortReason;

  constructor(abort: { reason: AbortReason; message: string }) {
    super(abort.message);
    this.reason = abort.reason;
  }
}

export class ControlReader {
  readonly #link: Link;
  readonly #signal: AbortSignal;
  readonly #onFrame: (frame: Frame) => void;
  readonly #failed: Promise<never>;
  #reject: (err: Error) => void = () => {};
  #error: Error | undefined;
  /** Set by {@link watch}: frames read ahead, in order. */
  #inbox: Frame[] | undefined;
  #wake: (() => void) | undefined;

  /** `onFrame` sees every frame read through this reader (data channels' too), before it is handled. */
  constructor(link: Link, signal: AbortSignal, onFrame: (frame: Frame) => void = () => {}) {
    this.#link = link;
    this.#signal = signal;
    this.#onFrame = onFrame;
    this.#failed = new Promise<never>((_, reject) => (this.#reject = reject));
    this.#failed.catch(() => {});
  }

  /** The first failure: the peer's Abort, a broken channel, or what {@link fail} was told. */
  get error(): Error | undefined {
    return this.#error;
  }

  /** Rejects with the first failure (never resolves): for a wait that must end when the transfer fails. */
  get failed(): Promise<never> {
    return this.#failed;
  }

  /** The transfer failed elsewhere: the next read or wait throws `err` (the first one only). */
  fail(err: Error): void {
    this.#error ??= err;
    this.#reject(err);
    this.#notify();
  }

  /** Throws when the transfer was cancelled (the signal's reason) or failed. */
  check(): void {
    if (this.#signal.aborted) throw this.#signal.reason instanceof Error ? this.#signal.reason : new Error("cancelled");
    if (this.#error !== undefined) throw this.#error;
  }

  /** The next frame of `reader` (by default the control channel's); a failure meanwhile throws. */
  async read(reader: FrameSource = this.#link.reader): Promise<Frame> {
    const frame = await Promise.race([reader.next(), this.#failed]);
    this.#onFrame(frame);
    if (frame.type === MessageType.Abort) throw new PeerAbort(decodeAbort(frame.payload));
    return frame;
  }

  /**
   * Reads the control channel ahead, in the background, so the peer's Abort
   * is seen while this side only writes (the source, during a pass).
   */
  watch(): void {
    this.#inbox = [];
    const inbox = this.#inbox;
    void (async () => {
      for (;;) {
        inbox.push(await this.read());
        this.#notify();
      }
    })().catch((err: Error) => this.fail(err));
  }

  /**
   * The next control message. Once {@link watch}ing, it comes from the frames
   * read ahead, and `check` (default {@link check}) runs before each wait;
   * else it is read now, racing the transfer's failure.
   */
  async next(check: () => void = () => this.check()): Promise<Frame> {
    const inbox = this.#inbox;
    if (inbox === undefined) return this.read();
    for (;;) {
      check();
      const frame = inbox.shift();
      if (frame !== undefined) return frame;
      await this.#woken();
    }
  }

  /** The next control message, which must be of `type`. */
  async expect(type: MessageType, check?: () => void): Promise<Frame> {
    const frame = await this.next(check);
    if (frame.type !== type)
      throw new WireError(`memory stream: expected ${MessageType[type]}, got ${MessageType[frame.type]}`);
    return frame;
  }

  #woken(): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        this.#signal.removeEventListener("abort", done);
        this.#wake = undefined;
        resolve();
      };
      this.#wake = done;
      this.#signal.addEventListener("abort", done, { once: true });
    });
  }

  #notify(): void {
    this.#wake?.();
  }
}
