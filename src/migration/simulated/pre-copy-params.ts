/**
 * The pre-copy knobs, resolved from the HCS form of `InitializeOptions`
 * with the simulated backend's defaults for what the orchestrator left out.
 *
 * @module
 */
import { availableParallelism } from "node:os";
import type { HcsMigrationOptions } from "../stated-state.js";

/** The knobs of the pre-copy memory transfer. */
export interface PreCopyParams {
  /** Brownout passes to aim for: past it, a pass that does not shrink the dirty set ends the brownout. */
  readonly targetPasses: number;
  /** Hard bound on brownout passes. */
  readonly maxPasses: number;
  /** Throttle the guest from this brownout pass on (1-based). */
  readonly throttleFromPass: number;
  /** Each throttled pass multiplies the guest's speed by this (clamped to 0 … 1). */
  readonly throttlingScale: number;
  /** The guest is never throttled below this percentage. */
  readonly minimumThrottlePercent: number;
  readonly skipThrottling: boolean;
  /** The brownout ends once the projected blackout is at most this (ms). */
  readonly targetBlackoutMs: number;
  /** With `cancelIfThresholdExceeded`, a projected blackout over this cancels the migration (ms). */
  readonly blackoutThresholdMs: number | undefined;
  readonly cancelIfThresholdExceeded: boolean;
  /** Per-page checksums, verified by the destination. */
  readonly checksums: boolean;
  /**
   * Page runs are compressed (raw deflate) by this many worker threads;
   * undefined: no compression. Set by `compression_settings`:
   * `throttle_worker_count`, or one worker per core when it is 0 or absent.
   */
  readonly compressionWorkers: number | undefined;
}

/** The values {@link preCopyParams} uses for what the options leave out. */
export const PRE_COPY_DEFAULTS = {
  targetPasses: 4,
  maxPasses: 8,
  throttleFromPass: 3,
  throttlingScale: 0.5,
  minimumThrottlePercent: 10,
  targetBlackoutMs: 50,
} as const;

/** Resolves the pre-copy knobs from the HCS form of `InitializeOptions`, defaults filling the gaps. */
export function preCopyParams(options: HcsMigrationOptions | undefined): PreCopyParams {
  const t = options?.MemoryTransferThrottleParams ?? {};
  const positive = (v: number | undefined, d: number) => (v === undefined || v <= 0 ? d : v);
  const maxPasses = positive(t.MaximumNumberOfBrownoutTransferPasses, PRE_COPY_DEFAULTS.maxPasses);
  const targetPasses = Math.min(
    maxPasses,
    positive(t.TargetNumberOfBrownoutTransferPasses, Math.min(PRE_COPY_DEFAULTS.targetPasses, maxPasses)),
  );
  const scale = t.ThrottlingScale;
  return {
    targetPasses,
    maxPasses,
    throttleFromPass: positive(t.StartingBrownoutPassNumberForThrottling, PRE_COPY_DEFAULTS.throttleFromPass),
    throttlingScale: scale === undefined || scale <= 0 ? PRE_COPY_DEFAULTS.throttlingScale : Math.min(1, scale),
    minimumThrottlePercent: t.MinimumThrottlePercentage ?? PRE_COPY_DEFAULTS.minimumThrottlePercent,
    skipThrottling: t.SkipThrottling === true,
    targetBlackoutMs: positive(t.TargetBlackoutTransferTime, PRE_COPY_DEFAULTS.targetBlackoutMs),
    blackoutThresholdMs: t.BlackoutTimeThresholdForCancellingMigration || undefined,
    cancelIfThresholdExceeded: options?.CancelIfBlackoutThresholdExceeds === true,
    checksums: options?.ChecksumVerification === true,
    compressionWorkers: compressionWorkers(options),
  };
}

/** The compression workers `compression_settings` asks for (undefined: no compression). */
export function compressionWorkers(options: HcsMigrationOptions | undefined): number | undefined {
  const settings = options?.CompressionSettings;
  if (settings === undefined) return undefined;
  const n = settings.ThrottleWorkerCount ?? 0;
  return n > 0 ? Math.min(n, 64) : availableParallelism();
}
