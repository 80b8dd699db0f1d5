// The pre-copy knobs resolved from the HCS form of InitializeOptions: what
// the orchestrator sets wins, what it leaves out (or sets to 0 or less) takes
// the simulated backend's default, and the values that have bounds are held
// to them. Pure functions: no sockets.
import { availableParallelism } from "node:os";
import { describe, expect, it } from "vitest";
import type { HcsMemoryTransferThrottleParams } from "../../src/migration/stated-state.js";
import { compressionWorkers, PRE_COPY_DEFAULTS, preCopyParams } from "../../src/migration/simulated/pre-copy-params.js";

const throttle = (t: HcsMemoryTransferThrottleParams) => preCopyParams({ MemoryTransferThrottleParams: t });

describe("preCopyParams", () => {
  it("takes the defaults when nothing is set", () => {
    expect(preCopyParams(undefined)).toEqual({
      targetPasses: PRE_COPY_DEFAULTS.targetPasses,
      maxPasses: PRE_COPY_DEFAULTS.maxPasses,
      throttleFromPass: PRE_COPY_DEFAULTS.throttleFromPass,
      throttlingScale: PRE_COPY_DEFAULTS.throttlingScale,
      minimumThrottlePercent: PRE_COPY_DEFAULTS.minimumThrottlePercent,
      skipThrottling: false,
      targetBlackoutMs: PRE_COPY_DEFAULTS.targetBlackoutMs,
      blackoutThresholdMs: undefined,
      cancelIfThresholdExceeded: false,
      checksums: false,
      compressionWorkers: undefined,
    });
  });

  it("reads a pass count of 0 or less as not set", () => {
    expect(throttle({ MaximumNumberOfBrownoutTransferPasses: 0 }).maxPasses).toBe(PRE_COPY_DEFAULTS.maxPasses);
    expect(throttle({ MaximumNumberOfBrownoutTransferPasses: -3 }).maxPasses).toBe(PRE_COPY_DEFAULTS.maxPasses);
    expect(throttle({ TargetBlackoutTransferTime: 0 }).targetBlackoutMs).toBe(PRE_COPY_DEFAULTS.targetBlackoutMs);
    expect(throttle({ MaximumNumberOfBrownoutTransferPasses: 1 }).maxPasses).toBe(1);
  });

  it("never aims for more passes than the bound", () => {
    // The target asked for is over the bound: the bound wins.
    const p = throttle({ MaximumNumberOfBrownoutTransferPasses: 2, TargetNumberOfBrownoutTransferPasses: 5 });
    expect(p).toMatchObject({ maxPasses: 2, targetPasses: 2 });
    // A low bound lowers the default target with it.
    expect(throttle({ MaximumNumberOfBrownoutTransferPasses: 3 })).toMatchObject({ maxPasses: 3, targetPasses: 3 });
    // A high bound leaves the default target alone.
    expect(throttle({ MaximumNumberOfBrownoutTransferPasses: 10 })).toMatchObject({
      maxPasses: 10,
      targetPasses: PRE_COPY_DEFAULTS.targetPasses,
    });
    expect(
      throttle({ MaximumNumberOfBrownoutTransferPasses: 10, TargetNumberOfBrownoutTransferPasses: 6 }),
    ).toMatchObject({ maxPasses: 10, targetPasses: 6 });
  });

  it("holds the throttling scale to 0 … 1, a scale of 0 or less taking the default", () => {
    expect(throttle({ ThrottlingScale: 0.25 }).throttlingScale).toBe(0.25);
    expect(throttle({ ThrottlingScale: 2 }).throttlingScale).toBe(1);
    expect(throttle({ ThrottlingScale: 0 }).throttlingScale).toBe(PRE_COPY_DEFAULTS.throttlingScale);
    expect(throttle({ ThrottlingScale: -1 }).throttlingScale).toBe(PRE_COPY_DEFAULTS.throttlingScale);
  });

  it("skips throttling only when told to", () => {
    expect(throttle({ SkipThrottling: true }).skipThrottling).toBe(true);
    expect(throttle({ SkipThrottling: false }).skipThrottling).toBe(false);
    expect(throttle({}).skipThrottling).toBe(false);
  });

  it("cancels over the threshold only when told to, and takes the threshold as given", () => {
    const p = preCopyParams({
      CancelIfBlackoutThresholdExceeds: true,
      MemoryTransferThrottleParams: { BlackoutTimeThresholdForCancellingMigration: 120 },
    });
    expect(p).toMatchObject({ cancelIfThresholdExceeded: true, blackoutThresholdMs: 120 });
    expect(preCopyParams({ MemoryTransferThrottleParams: {} }).cancelIfThresholdExceeded).toBe(false);
    expect(preCopyParams({ ChecksumVerification: true }).checksums).toBe(true);
  });
});

describe("compressionWorkers", () => {
  it("is off without compression settings", () => {
    expect(compressionWorkers(undefined)).toBeUndefined();
    expect(compressionWorkers({})).toBeUndefined();
  });

  it("takes the worker count asked for, at most 64", () => {
    // One more than the cores: not what the per-core default would give.
    const n = availableParallelism() + 1;
    expect(compressionWorkers({ CompressionSettings: { ThrottleWorkerCount: n } })).toBe(n);
    expect(compressionWorkers({ CompressionSettings: { ThrottleWorkerCount: 100 } })).toBe(64);
    expect(compressionWorkers({ CompressionSettings: { ThrottleWorkerCount: 64 } })).toBe(64);
  });

  it("starts one worker per core when the count is 0 or absent", () => {
    expect(compressionWorkers({ CompressionSettings: { ThrottleWorkerCount: 0 } })).toBe(availableParallelism());
    expect(compressionWorkers({ CompressionSettings: {} })).toBe(availableParallelism());
    expect(preCopyParams({ CompressionSettings: {} }).compressionWorkers).toBe(availableParallelism());
  });
});
