// The generated save payload messages under one namespace each, as
// `save.migration.Payload`, `save.vm.Payload`, ... (every file names its
// top message `Payload`, so they cannot share one flat export).
/**
 * The envelope a LCOW shim exports: `hcsshim.controller.migration.save.v1.Payload`
 * (schema_version, the VM, the pods).
 */
export * as migration from "../../gen/github.com/Microsoft/hcsshim/internal/controller/migration/save/payload_pb.js";
/** The VM's saved state (`hcsshim.controller.vm.save.v1`), carried in the envelope's `vm`. */
export * as vm from "../../gen/github.com/Microsoft/hcsshim/internal/controller/vm/save/payload_pb.js";
/** A pod's saved state (`hcsshim.controller.pod.save.v1`), one per entry of the envelope's `pods`. */
export * as pod from "../../gen/github.com/Microsoft/hcsshim/internal/controller/pod/save/payload_pb.js";
/** A Linux container's saved state (`hcsshim.controller.linuxcontainer.save.v1`), inside a pod's. */
export * as linuxcontainer from "../../gen/github.com/Microsoft/hcsshim/internal/controller/linuxcontainer/save/payload_pb.js";
/** A process's saved state (`hcsshim.controller.process.save.v1`), inside a container's. */
export * as process from "../../gen/github.com/Microsoft/hcsshim/internal/controller/process/save/payload_pb.js";
/** A pod network's saved state (`hcsshim.controller.network.save.v1`). */
export * as network from "../../gen/github.com/Microsoft/hcsshim/internal/controller/network/save/payload_pb.js";
/** The SCSI attachments' saved state (`hcsshim.controller.device.scsi.save.v1`). */
export * as scsi from "../../gen/github.com/Microsoft/hcsshim/internal/controller/device/scsi/save/payload_pb.js";
