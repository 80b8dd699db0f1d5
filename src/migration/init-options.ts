// InitializeOptions to the HCS options, as hcsshim's
// `InitializeOptionsFromProto` (pkg/migration/parse.go).
import {
  MemoryTransport,
  type InitializeOptions,
} from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_options_pb.js";
import { plain } from "./migration-errors.js";
import { hcsMigrationOptions, type HcsMigrationOptions, type HcsMigrationOrigin } from "./stated-state.js";

// HCS's MinimumThrottlePercentage is a uint8: hcsshim narrows the uint32.
const UINT8 = 0xff;

/**
 * The HCS options a side is prepared with. An absent `init_options` gives
 * only `Origin`. A memory transport other than TCP (UNSPECIFIED included) is
 * UNKNOWN: hcsshim returns a plain error for it. `minimum_throttle_percentage`
 * is narrowed to 8 bits as hcsshim does; `hcsMigrationOptions` then rejects a
 * percentage over 100 or a non-finite scale with INVALID_ARGUMENT, where a
 * real shim leaves them to HCS (whose schema says 1-100).
 */
export function initializeOptionsFromProto(
  init: InitializeOptions | undefined,
  origin: HcsMigrationOrigin,
): HcsMigrationOptions {
  if (init === undefined) return { Origin: origin };
  if (init.memoryTransport !== MemoryTransport.TCP) {
    const name = MemoryTransport[init.memoryTransport] ?? String(init.memoryTransport);
    throw plain(`convert memory transport: unsupported memory transport ${JSON.stringify(name)}`);
  }
  const t = init.memoryTransferThrottleParams;
  if (t?.minimumThrottlePercentage === undefined) return hcsMigrationOptions(init, origin);
  const narrowed = { ...t, minimumThrottlePercentage: t.minimumThrottlePercentage & UINT8 };
  return hcsMigrationOptions({ ...init, memoryTransferThrottleParams: narrowed }, origin);
}
