// The services everyone calls, known to the CLI without --proto: containerd's
// task v2 and v3, events (ttrpc Events/Forward and the task events), sandbox
// and streaming, NRI, and hcsshim's Migration with its save payloads. Their descriptors are the ones
// `npm run generate` serialized into gen/ (the *_pb.js files embed each
// FileDescriptorProto), so no .proto is compiled at run time. Loaded only
// when a command needs descriptors.

import type { DescFile } from "@bufbuild/protobuf";
import type { FileDescriptorProto } from "@bufbuild/protobuf/wkt";

const modules = () => [
  import("../../gen/containerd/task/v2/shim_pb.js"),
  import("../../gen/containerd/task/v3/shim_pb.js"),
  import("../../gen/containerd/events/task_pb.js"),
  import("../../gen/containerd/services/events/ttrpc/v1/events_pb.js"),
  import("../../gen/containerd/runtime/sandbox/v1/sandbox_pb.js"),
  import("../../gen/containerd/services/streaming/v1/streaming_pb.js"),
  import("../../gen/nri/pkg/api/v1alpha1/api_pb.js"),
  import("../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_pb.js"),
  // The save envelope PrepareAndExportSandbox returns, and the payloads inside it.
  import("../../gen/github.com/Microsoft/hcsshim/internal/controller/migration/save/payload_pb.js"),
  import("../../gen/github.com/Microsoft/hcsshim/internal/controller/vm/save/payload_pb.js"),
  import("../../gen/github.com/Microsoft/hcsshim/internal/controller/pod/save/payload_pb.js"),
  import("../../gen/github.com/Microsoft/hcsshim/internal/controller/linuxcontainer/save/payload_pb.js"),
  import("../../gen/github.com/Microsoft/hcsshim/internal/controller/process/save/payload_pb.js"),
  import("../../gen/github.com/Microsoft/hcsshim/internal/controller/network/save/payload_pb.js"),
  import("../../gen/github.com/Microsoft/hcsshim/internal/controller/device/scsi/save/payload_pb.js"),
];

const isFile = (v: unknown): v is DescFile =>
  typeof v === "object" && v !== null && "kind" in v && (v as { kind: unknown }).kind === "file";

/** Adds `file` after its dependencies, each file once. */
function addInOrder(file: DescFile, out: Map<string, FileDescriptorProto>): void {
  if (out.has(file.name)) return;
  for (const dep of file.dependencies) addInOrder(dep, out);
  out.set(file.proto.name, file.proto);
}

/** The built-in files with everything they import, dependencies first. */
export async function builtinProtos(): Promise<FileDescriptorProto[]> {
  const out = new Map<string, FileDescriptorProto>();
  for (const m of await Promise.all(modules())) {
    for (const v of Object.values(m)) if (isFile(v)) addInOrder(v, out);
  }
  return [...out.values()];
}
