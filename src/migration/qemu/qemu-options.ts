// The migration's options (HCS form) as QEMU capabilities and parameters, and
// the limits the source enforces itself. What QEMU cannot honour is refused
// here with a clear code, not silently dropped.
import { Code } from "../../code.js";
import { TtrpcError } from "../../ttrpc-error.js";
import type { HcsMigrationOptions } from "../stated-state.js";
import type { QemuSocketMode } from "./migration-socket.js";
import type { SourceLimits } from "./qemu-source-transfer.js";

/** The backend's own settings that shape the QEMU setup. */
export interface SetupSettings {
  readonly socket: QemuSocketMode;
  /** `max-bandwidth`, bytes/s. */
  readonly maxBandwidth: number;
  /** Whether `SkipThrottling: false` may turn on auto-converge. */
  readonly allowThrottling: boolean;
}

/** `migrate-set-capabilities` and `migrate-set-parameters` arguments for each side. */
export interface MigrationSetup {
  readonly capabilities: { capability: string; state: boolean }[];
  readonly parameters: Record<string, number>;
  /** Parameters the destination needs too (multifd's channel count), if any. */
  readonly destinationParameters?: Record<string, number>;
}

const unsupported = (what: string) => new TtrpcError(what, Code.Unimplemented);

/** Maps the options; throws UNIMPLEMENTED / INVALID_ARGUMENT for what QEMU 7.2 cannot do. */
export function migrationSetup(options: HcsMigrationOptions, settings: SetupSettings): MigrationSetup {
  if (options.ChecksumVerification)
    throw unsupported("checksum_verification: QEMU 7.2 has no RAM checksum (use TLS for integrity in transit)");
  const t = options.MemoryTransferThrottleParams ?? {};
  const capabilities = [{ capability: "events", state: true }];
  const parameters: Record<string, number> = { "max-bandwidth": settings.maxBandwidth };
  if (t.TargetBlackoutTransferTime !== undefined && t.TargetBlackoutTransferTime > 0)
    parameters["downtime-limit"] = Math.min(t.TargetBlackoutTransferTime, 2_000_000);
  const throttle = t.SkipThrottling === false && settings.allowThrottling;
  capabilities.push({ capability: "auto-converge", state: throttle });
  if (throttle) {
    if (t.ThrottlingScale !== undefined)
      parameters["cpu-throttle-increment"] = Math.min(100, Math.max(1, Math.round(t.ThrottlingScale)));
    if (t.MinimumThrottlePercentage !== undefined)
      parameters["max-cpu-throttle"] = Math.min(99, Math.max(1, 100 - t.MinimumThrottlePercentage));
  }
  const workers = options.CompressionSettings?.ThrottleWorkerCount ?? 1;
  capabilities.push({ capability: "multifd", state: workers > 1 });
  if (workers <= 1) return { capabilities, parameters };
  if (settings.socket === "fd")
    throw new TtrpcError(
      `throttle_worker_count ${workers}: QEMU's multifd needs tcp/unix URIs, not one duplicated socket`,
      Code.InvalidArgument,
    );
  const channels = Math.min(workers, 255);
  parameters["multifd-channels"] = channels;
  return { capabilities, parameters, destinationParameters: { "multifd-channels": channels } };
}

/** The pass limit and blackout threshold the source enforces (QEMU has neither). */
export function sourceLimits(options: HcsMigrationOptions): SourceLimits {
  const t = options.MemoryTransferThrottleParams ?? {};
  const threshold = t.BlackoutTimeThresholdForCancellingMigration;
  return {
    ...(t.MaximumNumberOfBrownoutTransferPasses === undefined
      ? {}
      : { maxPasses: t.MaximumNumberOfBrownoutTransferPasses }),
    ...(options.CancelIfBlackoutThresholdExceeds && threshold !== undefined ? { cancelThresholdMs: threshold } : {}),
  };
}
