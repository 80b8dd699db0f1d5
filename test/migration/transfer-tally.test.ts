// A side's transfer tally: pages and their bytes add up, blackout pages count
// apart, and the snapshot carries the counters with the time since the start
// (on a fake performance clock: no wall-clock assertion).
import { afterEach, describe, expect, it, vi } from "vitest";
import { TransferTally } from "../../src/migration/simulated/transfer-tally.js";

afterEach(() => {
  vi.useRealTimers();
});

describe("the transfer tally", () => {
  it("adds pages and their bytes, and counts the blackout's pages apart", () => {
    const tally = new TransferTally("source", true, 3);
    tally.pages(5, 4096, false);
    tally.pages(2, 4096, true);
    tally.pages(1, 512, true);
    expect(tally.stats.pages).toBe(8);
    expect(tally.stats.pageBytes).toBe(7 * 4096 + 512);
    expect(tally.stats.blackoutPages).toBe(3);
  });

  it("snapshots the counters, all zero at the start, with the time since the start", () => {
    vi.useFakeTimers({ toFake: ["performance"] });
    // The clock is not at 0 when the transfer starts.
    vi.advanceTimersByTime(1000);
    const tally = new TransferTally("destination", false, 4);
    vi.advanceTimersByTime(250);
    expect(tally.elapsedMs).toBe(250);
    tally.pages(1, 4096, false);
    expect(tally.snapshot()).toEqual({
      side: "destination",
      brownoutPasses: 0,
      pages: 1,
      pageBytes: 4096,
      zeroPages: 0,
      compressedPages: 0,
      channels: 4,
      wireBytes: 0,
      blackoutPages: 0,
      blackoutMs: 0,
      transferMs: 0,
      durationMs: 250,
      digest: "",
      throttlePercent: 100,
      projectedBlackoutMs: 0,
      checksums: false,
    });
    expect(tally.startedAt).toBe(performance.now() - 250);
  });
});
