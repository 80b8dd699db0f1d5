// A StatedState as a QEMU source exports it, for the tests of what a
// destination reads back from its annotations.
import type { StatedState } from "ttrpc-es/migration";
import { SPEC_ANNOTATION, VERSION_ANNOTATION } from "ttrpc-es/migration/qemu";

/** A spec a destination accepts: a pinned machine type, an absolute kernel path. */
export const goodSpec = { machine: "pc-q35-7.2", memoryMiB: 128, cpus: 1, kernel: "/boot/vmlinuz", accel: "tcg" };

/**
 * A state of `sizeBytes` of guest memory whose annotations carry `text` as the
 * spec and `version` as the QEMU version; undefined / null leave each out.
 */
export function exportedState(
  text: string | undefined,
  version: string | null = "7.2.22",
  sizeBytes = 128 << 20,
): StatedState {
  const annotations: Record<string, string> = {};
  if (text !== undefined) annotations[SPEC_ANNOTATION] = text;
  if (version !== null) annotations[VERSION_ANNOTATION] = version;
  return {
    schemaVersion: 1,
    sandboxId: "sb",
    sessionId: "s",
    vm: { guestOs: "linux", processorCount: 1, memory: { sizeBytes, pageSize: 4096 } },
    containers: [],
    annotations,
  };
}
