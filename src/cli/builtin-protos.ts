// The services everyone calls, known to the CLI without --proto: containerd's
// task v2 and v3, events (ttrpc Events/Forward and the task events), sandbox
// and streaming, NRI, and hcsshim's Migration with its save payloads. Their descriptors are the ones
// `npm run generate` serialized into gen/ (the *_pb.js files embed each
// FileDescriptorProto), so no .proto is compiled at run time. Loaded only
// when a command needs descriptors, and a call to one of these services
// loads only its own module.

import type { DescFile, DescService } from "@bufbuild/protobuf";
import type { FileDescriptorProto } from "@bufbuild/protobuf/wkt";

type GenModule = Promise<Record<string, unknown>>;

/** Each built-in service by full name, with the generated module that defines it. */
const serviceModules: Record<string, () => GenModule> = {
  "containerd.task.v2.Task": () => import("../../gen/containerd/task/v2/shim_pb.js"),
  "containerd.task.v3.Task": () => import("../../gen/containerd/task/v3/shim_pb.js"),
  "containerd.services.events.ttrpc.v1.Events": () =>
    import("../../gen/containerd/services/events/ttrpc/v1/events_pb.js"),
  "containerd.runtime.sandbox.v1.Sandbox": () => import("../../gen/containerd/runtime/sandbox/v1/sandbox_pb.js"),
  "containerd.services.streaming.v1.Streaming": () =>
    import("../../gen/containerd/services/streaming/v1/streaming_pb.js"),
  "nri.pkg.api.v1alpha1.HostFunctions": () => import("../../gen/nri/pkg/api/v1alpha1/api_pb.js"),
  "nri.pkg.api.v1alpha1.Plugin": () => import("../../gen/nri/pkg/api/v1alpha1/api_pb.js"),
  "nri.pkg.api.v1alpha1.Runtime": () => import("../../gen/nri/pkg/api/v1alpha1/api_pb.js"),
  Migration: () => import("../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_pb.js"),
};

/** The built-in files without a service: types that travel in Anys. */
const typeModules = (): GenModule[] => [
  import("../../gen/containerd/events/task_pb.js"),
  // The save envelope PrepareAndExportSandbox returns, and the payloads inside it.
  import("../../gen/github.com/Microsoft/hcsshim/internal/controller/migration/save/payload_pb.js"),
  import("../../gen/github.com/Microsoft/hcsshim/internal/controller/vm/save/payload_pb.js"),
  import("../../gen/github.com/Microsoft/hcsshim/internal/controller/pod/save/payload_pb.js"),
  import("../../gen/github.com/Microsoft/hcsshim/internal/controller/linuxcontainer/save/payload_pb.js"),
  import("../../gen/github.com/Microsoft/hcsshim/internal/controller/process/save/payload_pb.js"),
  import("../../gen/github.com/Microsoft/hcsshim/internal/controller/network/save/payload_pb.js"),
  import("../../gen/github.com/Microsoft/hcsshim/internal/controller/device/scsi/save/payload_pb.js"),
];

/** The full names of the built-in services. */
export const BUILTIN_SERVICES: readonly string[] = Object.keys(serviceModules);

const isFile = (v: unknown): v is DescFile =>
  typeof v === "object" && v !== null && "kind" in v && (v as { kind: unknown }).kind === "file";

/** The files a generated module (or any module of descriptors, such as protobuf-es's wkt) defines. */
export const filesOf = (m: Record<string, unknown>): DescFile[] => Object.values(m).filter(isFile);

/**
 * The built-in service with this full name, loading only the module that
 * defines it; undefined when no built-in service has the name.
 */
export async function builtinService(typeName: string): Promise<DescService | undefined> {
  if (!Object.hasOwn(serviceModules, typeName)) return undefined;
  for (const f of filesOf(await serviceModules[typeName]!())) {
    const s = f.services.find((x) => x.typeName === typeName);
    if (s !== undefined) return s;
  }
  return undefined;
}

/** Adds `file` after its dependencies, each file once. */
function addInOrder(file: DescFile, out: Map<string, FileDescriptorProto>): void {
  if (out.has(file.name)) return;
  for (const dep of file.dependencies) addInOrder(dep, out);
  out.set(file.proto.name, file.proto);
}

/** The built-in files with everything they import, dependencies first. */
export async function builtinProtos(): Promise<FileDescriptorProto[]> {
  const out = new Map<string, FileDescriptorProto>();
  const loads = Object.values(serviceModules).map((load) => load());
  for (const m of await Promise.all([...loads, ...typeModules()])) {
    for (const f of filesOf(m)) addInOrder(f, out);
  }
  return [...out.values()];
}
