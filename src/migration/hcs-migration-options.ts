/**
 * HCS's form of the migration options (`hcsschema.MigrationInitializeOptions`):
 * what the shim makes of the protobuf `InitializeOptions` it is sent, and how
 * a StatedState's `init_options` is read back and validated.
 *
 * @module
 */
import {
  type InitializeOptions,
  MemoryTransport,
} from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_options_pb.js";
import { Code } from "../code.js";
import { TtrpcError } from "../ttrpc-error.js";
import { boolean, fail, integer, object, oneOf, UINT32_MAX } from "./json-fields.js";

/** Which side a migration runs on, as HCS spells it. */
export type HcsMigrationOrigin = "Source" | "Destination";

/**
 * `hcsschema.MemoryMigrationTransferThrottleParams`: every key is a pointer in
 * Go, so a key set to 0 or false is still written; only absent keys are
 * omitted.
 */
export interface HcsMemoryTransferThrottleParams {
  SkipThrottling?: boolean;
  ThrottlingScale?: number;
  MinimumThrottlePercentage?: number;
  TargetNumberOfBrownoutTransferPasses?: number;
  StartingBrownoutPassNumberForThrottling?: number;
  MaximumNumberOfBrownoutTransferPasses?: number;
  /** Milliseconds. */
  TargetBlackoutTransferTime?: number;
  /** Milliseconds. */
  BlackoutTimeThresholdForCancellingMigration?: number;
}

/**
 * `hcsschema.MigrationInitializeOptions`: the JSON HCS receives when a side
 * initializes a migration, keys in Go field order. The booleans are plain
 * `omitempty` fields in Go, so they appear only when true.
 */
export interface HcsMigrationOptions {
  Origin?: HcsMigrationOrigin;
  MemoryTransport?: "TCP";
  MemoryTransferThrottleParams?: HcsMemoryTransferThrottleParams;
  CompressionSettings?: { ThrottleWorkerCount?: number };
  ChecksumVerification?: true;
  PerfTracingEnabled?: true;
  CancelIfBlackoutThresholdExceeds?: true;
  PrepareMemoryTransferMode?: true;
}

/**
 * Converts the protobuf `InitializeOptions` of PrepareAndExportSandbox or
 * PrepareSandbox into the JSON object HCS receives, with the given origin
 * (the shim adds it: the proto has none). Throws a TtrpcError with
 * INVALID_ARGUMENT when the options are absent, the memory transport is not
 * TCP (the only one HCS accepts), or `minimum_throttle_percentage` is over
 * 100 (HCS stores it in a uint8; the real shim would truncate it silently).
 */
export function hcsMigrationOptions(
  initOptions: InitializeOptions | undefined,
  origin: HcsMigrationOrigin,
): HcsMigrationOptions {
  if (initOptions === undefined) {
    throw new TtrpcError("init_options is required", Code.InvalidArgument);
  }
  if (initOptions.memoryTransport !== MemoryTransport.TCP) {
    const name = MemoryTransport[initOptions.memoryTransport] ?? String(initOptions.memoryTransport);
    throw new TtrpcError(
      `unsupported memory transport ${name}: only MEMORY_TRANSPORT_TCP is accepted`,
      Code.InvalidArgument,
    );
  }
  const options: HcsMigrationOptions = { Origin: origin, MemoryTransport: "TCP" };
  const throttle = initOptions.memoryTransferThrottleParams;
  if (throttle !== undefined) {
    if (throttle.minimumThrottlePercentage !== undefined && throttle.minimumThrottlePercentage > 100) {
      throw new TtrpcError(
        `minimum_throttle_percentage ${throttle.minimumThrottlePercentage} is over 100`,
        Code.InvalidArgument,
      );
    }
    if (throttle.throttlingScale !== undefined && !Number.isFinite(throttle.throttlingScale)) {
      throw new TtrpcError(`throttling_scale ${throttle.throttlingScale} is not a finite number`, Code.InvalidArgument);
    }
    options.MemoryTransferThrottleParams = definedOnly({
      SkipThrottling: throttle.skipThrottling,
      ThrottlingScale: throttle.throttlingScale,
      MinimumThrottlePercentage: throttle.minimumThrottlePercentage,
      TargetNumberOfBrownoutTransferPasses: throttle.targetNumberOfBrownoutTransferPasses,
      StartingBrownoutPassNumberForThrottling: throttle.startingBrownoutPassNumberForThrottling,
      MaximumNumberOfBrownoutTransferPasses: throttle.maximumNumberOfBrownoutTransferPasses,
      TargetBlackoutTransferTime: throttle.targetBlackoutTransferTime,
      BlackoutTimeThresholdForCancellingMigration: throttle.blackoutTimeThresholdForCancellingMigration,
    });
  }
  if (initOptions.compressionSettings !== undefined) {
    options.CompressionSettings = definedOnly({
      ThrottleWorkerCount: initOptions.compressionSettings.throttleWorkerCount,
    });
  }
  if (initOptions.checksumVerification) options.ChecksumVerification = true;
  if (initOptions.perfTracingEnabled) options.PerfTracingEnabled = true;
  if (initOptions.cancelIfBlackoutThresholdExceeds) options.CancelIfBlackoutThresholdExceeds = true;
  if (initOptions.prepareMemoryTransferMode) options.PrepareMemoryTransferMode = true;
  return options;
}

// Go pointer fields: only nil is omitted, so drop undefined and keep 0/false.
function definedOnly<T extends object>(object: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(object).filter(([, v]) => v !== undefined)) as {
    [K in keyof T]?: Exclude<T[K], undefined>;
  };
}

const throttleUint32Keys = [
  "TargetNumberOfBrownoutTransferPasses",
  "StartingBrownoutPassNumberForThrottling",
  "MaximumNumberOfBrownoutTransferPasses",
  "TargetBlackoutTransferTime",
  "BlackoutTimeThresholdForCancellingMigration",
] as const;

const optionFlags = [
  "ChecksumVerification",
  "PerfTracingEnabled",
  "CancelIfBlackoutThresholdExceeds",
  "PrepareMemoryTransferMode",
] as const;

function readThrottle(value: unknown, path: string): HcsMemoryTransferThrottleParams {
  const json = object(value, path);
  const out: HcsMemoryTransferThrottleParams = {};
  if (json.SkipThrottling != null) out.SkipThrottling = boolean(json.SkipThrottling, `${path}.SkipThrottling`);
  if (json.ThrottlingScale != null) {
    if (typeof json.ThrottlingScale !== "number") fail(`${path}.ThrottlingScale`, "must be a number");
    out.ThrottlingScale = json.ThrottlingScale;
  }
  if (json.MinimumThrottlePercentage != null) {
    out.MinimumThrottlePercentage = integer(
      json.MinimumThrottlePercentage,
      `${path}.MinimumThrottlePercentage`,
      0,
      100,
    );
  }
  for (const key of throttleUint32Keys) {
    if (json[key] != null) out[key] = integer(json[key], `${path}.${key}`, 0, UINT32_MAX);
  }
  return out;
}

export function readHcsMigrationOptions(value: unknown, path: string): HcsMigrationOptions {
  const json = object(value, path);
  const out: HcsMigrationOptions = {};
  if (json.Origin != null) out.Origin = oneOf(json.Origin, `${path}.Origin`, ["Source", "Destination"] as const);
  if (json.MemoryTransport != null)
    out.MemoryTransport = oneOf(json.MemoryTransport, `${path}.MemoryTransport`, ["TCP"] as const);
  if (json.MemoryTransferThrottleParams != null) {
    out.MemoryTransferThrottleParams = readThrottle(
      json.MemoryTransferThrottleParams,
      `${path}.MemoryTransferThrottleParams`,
    );
  }
  if (json.CompressionSettings != null) {
    const settings = object(json.CompressionSettings, `${path}.CompressionSettings`);
    out.CompressionSettings = {};
    if (settings.ThrottleWorkerCount != null) {
      out.CompressionSettings.ThrottleWorkerCount = integer(
        settings.ThrottleWorkerCount,
        `${path}.CompressionSettings.ThrottleWorkerCount`,
        0,
        UINT32_MAX,
      );
    }
  }
  for (const flag of optionFlags) {
    if (json[flag] != null && boolean(json[flag], `${path}.${flag}`)) out[flag] = true;
  }
  return out;
}
