/**
 * The source's channels: frames go out on them in turn, and each channel
 * that pushes back is waited for only when it is its turn again, so the
 * others keep flowing. The first channel also carries the control messages.
 *
 * @module
 */
import { write } from "./frame-io.js";
import type { Link } from "./transfer-link.js";
import type { TransferTally } from "./transfer-tally.js";
import { WireError } from "./wire-protocol.js";

export class ChannelScheduler {
  readonly #links: readonly Link[];
  readonly #check: () => void;
  /** One pending drain per channel. */
  readonly #backlog: (Promise<void> | undefined)[];
  #turn = 0;
  #lastPassSent = false;
  readonly #tally: TransferTally;

  /**
   * `check` runs before each write and throws to stop the transfer; a data
   * channel that closes before the last pass ended on it is `onBroken`.
   * The bytes written, framing included, count in `tally`.
   */
  constructor(links: readonly Link[], tally: TransferTally, check: () => void, onBroken: (err: Error) => void) {
    this.#links = links;
    this.#tally = tally;
    this.#check = check;
    this.#backlog = links.map(() => undefined);
    for (const l of links.slice(1)) {
      l.socket.on("close", () => {
        if (!this.#lastPassSent) onBroken(new WireError("a memory-transfer channel closed"));
      });
    }
  }

  get count(): number {
    return this.#links.length;
  }

  /** Writes one frame (as `buffers`, one writev) on `channel`, after that channel's previous write drained. */
  async sendOn(channel: number, ...buffers: Buffer[]): Promise<void> {
    this.#check();
    await this.#backlog[channel];
    this.#check();
    for (const b of buffers) this.#tally.stats.wireBytes += b.length;
    const pending = write(this.#links[channel]!.socket, ...buffers);
    // Awaited at the channel's next turn; a failure meanwhile is not unhandled.
    pending?.then(
      () => {
        if (this.#backlog[channel] === pending) this.#backlog[channel] = undefined;
      },
      () => {},
    );
    this.#backlog[channel] = pending;
  }

  /** A control message, on the first channel. */
  sendControl(frame: Buffer): Promise<void> {
    return this.sendOn(0, frame);
  }

  /** The channel whose turn it is; the turn moves on. */
  takeTurn(): number {
    const channel = this.#turn;
    this.#turn = (channel + 1) % this.#links.length;
    return channel;
  }

  /** Writes a frame on the channel whose turn it is. */
  sendNext(...buffers: Buffer[]): Promise<void> {
    return this.sendOn(this.takeTurn(), ...buffers);
  }

  /** Writes the same frame on every channel. */
  async sendEvery(frame: Buffer): Promise<void> {
    for (let c = 0; c < this.#links.length; c++) await this.sendOn(c, frame);
  }

  /** Nothing more comes on the data channels: their closing is no longer a failure. */
  lastPassSent(): void {
    this.#lastPassSent = true;
  }

  /** Every channel's writes have drained. */
  async flushed(): Promise<void> {
    for (let c = 0; c < this.#links.length; c++) await this.#backlog[c];
  }

  /** Closes every channel at once. */
  destroy(): void {
    for (const l of this.#links) l.socket.destroy();
  }

  /** No byte waits in any socket. */
  idle(): boolean {
    return this.#links.every((l) => l.socket.writableLength === 0);
  }
}
