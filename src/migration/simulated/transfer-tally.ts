/**
 * The figures of one side's memory transfer while it runs: counted in one
 * object, and handed out as a {@link TransferStats} snapshot.
 *
 * @module
 */
import type { MigrationSide } from "../orchestrator-types.js";
import { emptyStats, type TransferStats } from "./transfer-events.js";

export class TransferTally {
  /** The counters; the side that owns the tally writes them. */
  readonly stats: { -readonly [K in keyof TransferStats]: TransferStats[K] };
  readonly #started = performance.now();

  constructor(side: MigrationSide, checksums: boolean, channels: number) {
    this.stats = emptyStats(side, checksums);
    this.stats.channels = channels;
  }

  /** Wall time since the transfer started, ms. */
  get elapsedMs(): number {
    return performance.now() - this.#started;
  }

  /** The transfer's start, on the `performance.now()` clock. */
  get startedAt(): number {
    return this.#started;
  }

  /** `count` pages of `pageSize` bytes moved (sent or applied). */
  pages(count: number, pageSize: number, blackout: boolean): void {
    this.stats.pages += count;
    this.stats.pageBytes += count * pageSize;
    if (blackout) this.stats.blackoutPages += count;
  }

  /** The figures now. */
  snapshot(): TransferStats {
    return { ...this.stats, durationMs: this.elapsedMs };
  }
}
