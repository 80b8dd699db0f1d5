// Options shared by `ttrpc-es migration serve | run | demo`: sizes, the
// simulated VM's shape, and every InitializeOptions field.

import type { ParseArgsConfig } from "node:util";
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  MemoryTransport,
  type InitializeOptionsSchema,
} from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_options_pb.js";

/** A usage error: the command prints it and exits 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

export const vmOptions = {
  memory: { type: "string" },
  "page-size": { type: "string" },
  "dirty-rate": { type: "string" },
  processors: { type: "string" },
} as const satisfies ParseArgsConfig["options"];

export const VM_OPTIONS_HELP = `  --memory SIZE                  guest memory, e.g. 64MiB, 1GiB (default 64MiB)
  --page-size SIZE               bytes per page, a power of two (default 4096)
  --dirty-rate N                 pages the guest writes per second (default 2000)
  --processors N                 virtual processors (default 2)`;

export const initOptions = {
  "no-checksum": { type: "boolean" },
  checksum: { type: "boolean" },
  "skip-throttling": { type: "boolean" },
  "throttling-scale": { type: "string" },
  "min-throttle": { type: "string" },
  "target-passes": { type: "string" },
  "throttle-from-pass": { type: "string" },
  "max-passes": { type: "string" },
  "target-blackout-ms": { type: "string" },
  "blackout-threshold-ms": { type: "string" },
  "cancel-if-blackout-exceeds": { type: "boolean" },
  "compression-workers": { type: "string" },
  "perf-tracing": { type: "boolean" },
  "prepare-memory-transfer-mode": { type: "boolean" },
} as const satisfies ParseArgsConfig["options"];

export const INIT_OPTIONS_HELP = `InitializeOptions (memory_transport is always MEMORY_TRANSPORT_TCP):
  --checksum | --no-checksum     checksum_verification (default on for demo, off for run)
  --skip-throttling              memory_transfer_throttle_params.skip_throttling
  --throttling-scale X           throttling_scale, the guest speed factor per throttled pass (e.g. 0.5)
  --min-throttle PERCENT         minimum_throttle_percentage
  --target-passes N              target_number_of_brownout_transfer_passes
  --throttle-from-pass N         starting_brownout_pass_number_for_throttling
  --max-passes N                 maximum_number_of_brownout_transfer_passes
  --target-blackout-ms MS        target_blackout_transfer_time
  --blackout-threshold-ms MS     blackout_time_threshold_for_cancelling_migration
  --cancel-if-blackout-exceeds   cancel_if_blackout_threshold_exceeds
  --compression-workers N        compression_settings.throttle_worker_count (the simulated backend
                                 compresses pages on N worker threads; 0: one per core)
  --perf-tracing                 perf_tracing_enabled
  --prepare-memory-transfer-mode prepare_memory_transfer_mode`;

const UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
};

/** "64MiB", "1g", "4096" → bytes (binary units). */
export function parseSize(text: string, what: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)$/i.exec(text.trim());
  const unit = m === null ? undefined : UNITS[m[2]!.toLowerCase()];
  if (m === null || unit === undefined) throw new UsageError(`${what}: "${text}" is not a size like 64MiB or 1GiB`);
  const n = Math.round(Number(m[1]) * unit);
  if (!Number.isSafeInteger(n) || n <= 0) throw new UsageError(`${what}: "${text}" is out of range`);
  return n;
}

/** A non-negative integer option, or undefined when absent. */
export function parseCount(text: string | undefined, what: string, max = 2 ** 32 - 1): number | undefined {
  if (text === undefined) return undefined;
  if (!/^[0-9]+$/.test(text) || Number(text) > max)
    throw new UsageError(`${what}: "${text}" is not an integer from 0 to ${max}`);
  return Number(text);
}

function parseNumber(text: string | undefined, what: string): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n)) throw new UsageError(`${what}: "${text}" is not a number`);
  return n;
}

type Values = {
  [K in keyof typeof initOptions]?: (typeof initOptions)[K]["type"] extends "boolean" ? boolean : string;
};

/** The InitializeOptions the flags describe. */
export function initializeOptions(
  v: Values,
  checksumByDefault: boolean,
): MessageInitShape<typeof InitializeOptionsSchema> {
  if (v.checksum === true && v["no-checksum"] === true)
    throw new UsageError("--checksum and --no-checksum exclude each other");
  const throttle = {
    skipThrottling: v["skip-throttling"],
    throttlingScale: parseNumber(v["throttling-scale"], "--throttling-scale"),
    minimumThrottlePercentage: parseCount(v["min-throttle"], "--min-throttle", 100),
    targetNumberOfBrownoutTransferPasses: parseCount(v["target-passes"], "--target-passes"),
    startingBrownoutPassNumberForThrottling: parseCount(v["throttle-from-pass"], "--throttle-from-pass"),
    maximumNumberOfBrownoutTransferPasses: parseCount(v["max-passes"], "--max-passes"),
    targetBlackoutTransferTime: parseCount(v["target-blackout-ms"], "--target-blackout-ms"),
    blackoutTimeThresholdForCancellingMigration: parseCount(v["blackout-threshold-ms"], "--blackout-threshold-ms"),
  };
  const defined = Object.fromEntries(Object.entries(throttle).filter(([, x]) => x !== undefined));
  const workers = parseCount(v["compression-workers"], "--compression-workers");
  return {
    memoryTransport: MemoryTransport.TCP,
    ...(Object.keys(defined).length === 0 ? {} : { memoryTransferThrottleParams: defined }),
    ...(workers === undefined ? {} : { compressionSettings: { throttleWorkerCount: workers } }),
    checksumVerification: v.checksum === true || (checksumByDefault && v["no-checksum"] !== true),
    perfTracingEnabled: v["perf-tracing"] === true,
    cancelIfBlackoutThresholdExceeds: v["cancel-if-blackout-exceeds"] === true,
    prepareMemoryTransferMode: v["prepare-memory-transfer-mode"] === true,
  };
}

/** Human-readable bytes. */
export function formatBytes(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(2)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}
