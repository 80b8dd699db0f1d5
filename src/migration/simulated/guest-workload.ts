/**
 * The guest workload of a simulated VM: it writes to pseudo-random pages at
 * `dirtyPagesPerSecond` (scaled by the throttle percentage) while running.
 * Time-driven, not timer-driven: {@link GuestWorkload.advance} dirties the
 * pages owed for the time elapsed since the last call, so the transfer loop
 * can call it between batches and a coarse timer covers idle periods.
 *
 * @module
 */
import type { MemoryImage } from "./memory-image.js";

/** What a destination needs to continue a {@link GuestWorkload} where the source left it. */
export interface GuestWorkloadState {
  /** PRNG state (xorshift32), so a resumed guest continues the same sequence. */
  readonly seed: number;
  /** Page writes done so far. */
  readonly writes: number;
}

/** A simulated guest that writes to pseudo-random pages at a set rate while it runs. */
export class GuestWorkload {
  readonly memory: MemoryImage;
  /** Page writes per second at 100 %. */
  dirtyPagesPerSecond: number;
  #throttlePercent = 100;
  #running = false;
  #last = 0;
  #owed = 0;
  #seed: number;
  #writes = 0;
  #timer: NodeJS.Timeout | undefined;
  #held = false;
  readonly #now: () => number;

  constructor(
    memory: MemoryImage,
    options: { dirtyPagesPerSecond: number; state?: GuestWorkloadState; now?: () => number },
  ) {
    this.memory = memory;
    this.dirtyPagesPerSecond = options.dirtyPagesPerSecond;
    this.#seed = options.state?.seed || 0x9e3779b9;
    this.#writes = options.state?.writes ?? 0;
    this.#now = options.now ?? (() => performance.now());
  }

  get running(): boolean {
    return this.#running;
  }

  get throttlePercent(): number {
    return this.#throttlePercent;
  }

  get writes(): number {
    return this.#writes;
  }

  /** Device state: what the destination needs to continue the same guest. */
  state(): GuestWorkloadState {
    return { seed: this.#seed, writes: this.#writes };
  }

  /** Runs (or resumes) the guest; `tickMs` is the idle timer period. */
  start(tickMs = 10): void {
    if (this.#running) return;
    this.#running = true;
    this.#last = this.#now();
    this.#timer = setInterval(() => {
      if (!this.#held) this.advance();
    }, tickMs);
    this.#timer.unref();
  }

  /** Pauses the guest (blackout, stop). Pages owed up to now are written first. */
  pause(): void {
    if (!this.#running) return;
    this.advance();
    this.#running = false;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /**
   * While held, the idle timer writes nothing; the pages owed pile up and
   * are written at the next {@link advance}. The transfer holds the guest so
   * it writes only when no page bytes wait in a socket (they are sent from
   * the guest's memory without a copy, and must not change on the way).
   */
  hold(held: boolean): void {
    this.#held = held;
  }

  /** Throttles the guest to `percent` of its speed (0 … 100). */
  throttle(percent: number): void {
    this.advance();
    this.#throttlePercent = Math.max(0, Math.min(100, percent));
  }

  /** Writes the pages owed for the time since the last call; returns how many. */
  advance(): number {
    if (!this.#running) return 0;
    const now = this.#now();
    this.#owed += ((now - this.#last) / 1000) * this.dirtyPagesPerSecond * (this.#throttlePercent / 100);
    this.#last = now;
    const n = Math.floor(this.#owed);
    if (n <= 0) return 0;
    this.#owed -= n;
    const memory = this.memory;
    if (n >= memory.pageCount * 4) {
      // Everything is dirty anyway: one write per page, cheaply.
      for (let i = 0; i < memory.pageCount; i++) this.#write(i);
    } else {
      for (let k = 0; k < n; k++) {
        let x = this.#seed;
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        this.#seed = x >>> 0;
        this.#write(this.#seed % memory.pageCount);
      }
    }
    return n;
  }

  #write(index: number): void {
    const page = this.memory.page(index);
    // Keep the index stamp (bytes 0-3); bump a counter at an offset that moves.
    const off = 4 + ((this.#writes * 8) % (page.length - 8));
    page.writeUInt32LE((page.readUInt32LE(off) + 1) >>> 0, off);
    this.#writes++;
    this.memory.markDirty(index);
  }
}
