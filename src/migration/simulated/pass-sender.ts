/**
 * One pass of the source: PassBegin, the pass's dirty pages (zero pages as
 * markers, the others as runs of up to 1 MiB a frame), PassEnd on every
 * channel. Between frames the guest may write again, but only while no page
 * bytes wait in a socket (they are its memory).
 *
 * @module
 */
import { setImmediate as yieldToLoop } from "node:timers/promises";
import type { ChannelScheduler } from "./channel-scheduler.js";
import type { PageFrames, SourceFaults } from "./page-frames.js";
import type { SimulatedVm } from "./simulated-vm.js";
import type { TransferObserver } from "./transfer-events.js";
import type { TransferTally } from "./transfer-tally.js";
import { encodePassBegin, encodePassEnd, MAX_RUNS_PER_FRAME, WireError } from "./wire-protocol.js";

/** Page bytes per Pages frame at most: big writes, few frames. */
const FRAME_BYTES = 1024 * 1024;
/** Zero-page runs per ZeroPages frame at most. */
const ZERO_RUNS_PER_FRAME = 8192;

export interface PassSenderOptions {
  readonly vm: SimulatedVm;
  readonly frames: PageFrames;
  readonly channels: ChannelScheduler;
  readonly tally: TransferTally;
  readonly observe: TransferObserver;
  readonly faults: SourceFaults | undefined;
}

/** The pages of a pass not yet sent: zero runs, and data runs for the next frame. */
class PassBatch {
  readonly zeros: number[] = [];
  runs: number[] = [];
  runPages = 0;

  takeRuns(): { runs: number[]; pages: number } {
    const out = { runs: this.runs, pages: this.runPages };
    this.runs = [];
    this.runPages = 0;
    return out;
  }
}

export class PassSender {
  readonly #o: PassSenderOptions;
  readonly #framePages: number;

  constructor(o: PassSenderOptions) {
    this.#o = o;
    this.#framePages = Math.max(1, Math.floor(FRAME_BYTES / o.vm.memory.pageSize));
  }

  /** Sends pass `pass` of `pages` (ascending page numbers); the blackout pass is the last on every channel. */
  async send(pass: number, blackout: boolean, pages: Uint32Array): Promise<void> {
    const { vm, channels, frames } = this.#o;
    const throttlePercent = vm.workload.throttlePercent;
    this.#o.observe({ type: "pass", side: "source", pass, blackout, pages: pages.length, throttlePercent });
    await channels.sendControl(encodePassBegin({ pass, pages: pages.length, blackout }));
    const batch = new PassBatch();
    const pool = await frames.workers();
    let sentFrames = 0;
    for (let i = 0; i < pages.length; ) {
      const count = this.#take(pages, i, batch);
      if (batch.zeros.length >= 2 * ZERO_RUNS_PER_FRAME) await frames.sendZeroRuns(batch.zeros);
      i += count;
      this.#o.tally.pages(count, vm.memory.pageSize, blackout);
      const full = batch.runPages >= this.#framePages || batch.runs.length >= 2 * MAX_RUNS_PER_FRAME;
      if (!full && i < pages.length) continue;
      const { runs, pages: runPages } = batch.takeRuns();
      if (runs.length > 0) await frames.sendRuns(pool, runs, runPages, blackout);
      this.#afterFrame(pass, blackout, i, pages.length);
      // Let the event loop breathe (RPCs, timers) even when the sockets never push back.
      if (++sentFrames % 16 === 0) await yieldToLoop();
    }
    await frames.sendZeroRuns(batch.zeros);
    await frames.settle();
    await channels.sendEvery(encodePassEnd({ pass, last: blackout }));
    if (blackout) channels.lastPassSent();
  }

  /** The run of pages from `pages[i]`, into the batch; its length. Synchronous: it runs once per run of pages. */
  #take(pages: Uint32Array, i: number, batch: PassBatch): number {
    const memory = this.#o.vm.memory;
    const first = pages[i]!;
    let count = 1;
    if (memory.isZero(first)) {
      // Zero pages travel as (first, count) markers, as hypervisors send them.
      while (i + count < pages.length && pages[i + count] === first + count && memory.isZero(first + count)) count++;
      batch.zeros.push(first, count);
      this.#o.tally.stats.zeroPages += count;
    } else {
      // Consecutive data pages, up to a frame's worth.
      while (
        batch.runPages + count < this.#framePages &&
        i + count < pages.length &&
        pages[i + count] === first + count &&
        !memory.isZero(first + count)
      )
        count++;
      batch.runs.push(first, count);
      batch.runPages += count;
    }
    return count;
  }

  #afterFrame(pass: number, blackout: boolean, passDone: number, passPages: number): void {
    const { vm, tally, channels } = this.#o;
    const pageBytes = tally.stats.pageBytes;
    const drop = this.#o.faults?.dropConnectionAfterBytes;
    if (drop !== undefined && pageBytes >= drop) {
      channels.destroy();
      throw new WireError(`memory-transfer connection dropped after ${pageBytes} bytes (injected fault)`);
    }
    const imageBytes = vm.memory.sizeBytes;
    this.#o.observe({ type: "progress", side: "source", pass, blackout, passDone, passPages, pageBytes, imageBytes });
    // The guest writes only while no page bytes wait in a socket (they are its memory).
    if (!blackout && channels.idle()) vm.workload.advance();
  }
}
