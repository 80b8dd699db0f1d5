// The QEMU backend's StatedState: the VM's shape in the common fields, the
// device model (a QemuVmSpec, as JSON) and the source's QEMU version in
// annotations. The destination rebuilds the argv from the checked spec; it
// never runs arguments read off the wire.
import { Code } from "../../code.js";
import { TtrpcError } from "../../ttrpc-error.js";
import type { PrepareSourceRequest } from "../backend.js";
import type { StatedState } from "../stated-state.js";
import { DEFAULT_MACHINE_TYPE, specProblem, type QemuVmSpec } from "./qemu-vm.js";

/** The annotation holding the device model. */
export const SPEC_ANNOTATION = "ttrpc-es.qemu/spec";
/** The annotation holding the source's QEMU version (`major.minor.micro`). */
export const VERSION_ANNOTATION = "ttrpc-es.qemu/version";
const PAGE_SIZE = 4096;
const MiB = 1024 * 1024;

/** The export of a running source. */
export function exportSpec(
  spec: QemuVmSpec,
  version: string,
  sandboxId: string,
  request: PrepareSourceRequest,
): StatedState {
  const pinned: QemuVmSpec = {
    ...spec,
    machine: spec.machine ?? DEFAULT_MACHINE_TYPE,
    cpus: spec.cpus ?? 1,
    accel: spec.accel ?? "tcg",
  };
  return {
    schemaVersion: 1,
    sandboxId,
    sessionId: request.sessionId,
    vm: {
      guestOs: "linux",
      processorCount: pinned.cpus!,
      memory: { sizeBytes: spec.memoryMiB * MiB, pageSize: PAGE_SIZE },
    },
    containers: [],
    initOptions: request.options,
    annotations: { [SPEC_ANNOTATION]: JSON.stringify(pinned), [VERSION_ANNOTATION]: version },
  };
}

/** The spec and version of an imported state; INVALID_ARGUMENT when missing or malformed. */
export function importSpec(state: StatedState): { spec: QemuVmSpec; version: string } {
  const invalid = (why: string) => new TtrpcError(`config: ${why}`, Code.InvalidArgument);
  const text = state.annotations[SPEC_ANNOTATION];
  const version = state.annotations[VERSION_ANNOTATION];
  if (text === undefined) throw invalid(`no ${SPEC_ANNOTATION} annotation: not exported by a QEMU shim`);
  if (version === undefined || !/^\d+\.\d+\.\d+$/.test(version))
    throw invalid(`${VERSION_ANNOTATION} is not a QEMU version`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw invalid(`${SPEC_ANNOTATION} is not JSON`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    throw invalid(`${SPEC_ANNOTATION} is not an object`);
  const r = raw as Record<string, unknown>;
  const spec = {
    machine: r.machine,
    memoryMiB: r.memoryMiB,
    cpus: r.cpus,
    kernel: r.kernel,
    ...(r.initrd === undefined ? {} : { initrd: r.initrd }),
    ...(r.append === undefined ? {} : { append: r.append }),
    accel: r.accel,
  } as QemuVmSpec;
  const problem = typeof spec.machine === "string" ? specProblem(spec) : "machine type missing";
  if (problem !== undefined) throw invalid(problem);
  if (spec.memoryMiB * MiB !== state.vm.memory.sizeBytes)
    throw invalid("vm.memory.size_bytes differs from the device model's memory");
  return { spec, version };
}
