// The adjuster example: every new container gets an environment variable
// naming the plugin, and a memory limit when its pod or the container is
// annotated `ttrpc-es.nri/memory-limit: 256Mi` (bytes, or Ki/Mi/Gi). A bad
// annotation refuses the container with INVALID_ARGUMENT, which the runtime
// reports as the container's creation error. Copy it to start a plugin of your own.
import { Code } from "../../code.js";
import { TtrpcError } from "../../ttrpc-error.js";
import type { ContainerAdjustmentInit, PluginHandlers } from "../plugin-handlers.js";

/** The annotation the adjuster reads. */
export const MEMORY_LIMIT_ANNOTATION = "ttrpc-es.nri/memory-limit";

const UNITS: Record<string, bigint> = { "": 1n, Ki: 1n << 10n, Mi: 1n << 20n, Gi: 1n << 30n };

/** Parses "268435456", "256Mi", "1Gi" into bytes; throws INVALID_ARGUMENT otherwise. */
export function parseMemoryLimit(text: string): bigint {
  const m = /^(\d+)(Ki|Mi|Gi)?$/.exec(text.trim());
  if (!m) {
    throw new TtrpcError(
      `${MEMORY_LIMIT_ANNOTATION}: "${text}" is not a size (bytes, or a number with Ki, Mi or Gi)`,
      Code.InvalidArgument,
    );
  }
  return BigInt(m[1]!) * UNITS[m[2] ?? ""]!;
}

/** Handlers that adjust new containers as described above. */
export function adjusterPlugin(name = "ttrpc-es-adjuster"): PluginHandlers {
  return {
    createContainer(pod, container) {
      const adjust: ContainerAdjustmentInit = { env: [{ key: "NRI_ADJUSTED_BY", value: name }] };
      // The container's own annotation wins over its pod's.
      const limit = container.annotations[MEMORY_LIMIT_ANNOTATION] ?? pod.annotations[MEMORY_LIMIT_ANNOTATION];
      if (limit !== undefined) {
        adjust.linux = { resources: { memory: { limit: { value: parseMemoryLimit(limit) } } } };
      }
      return { adjust };
    },
  };
}
