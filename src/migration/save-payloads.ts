// The generated save payload messages under one namespace each, as
// `save.migration.Payload`, `save.vm.Payload`, ... (every file names its
// top message `Payload`, so they cannot share one flat export).
export * as migration from "../../gen/github.com/Microsoft/hcsshim/internal/controller/migration/save/payload_pb.js";
export * as vm from "../../gen/github.com/Microsoft/hcsshim/internal/controller/vm/save/payload_pb.js";
export * as pod from "../../gen/github.com/Microsoft/hcsshim/internal/controller/pod/save/payload_pb.js";
export * as linuxcontainer from "../../gen/github.com/Microsoft/hcsshim/internal/controller/linuxcontainer/save/payload_pb.js";
export * as process from "../../gen/github.com/Microsoft/hcsshim/internal/controller/process/save/payload_pb.js";
export * as network from "../../gen/github.com/Microsoft/hcsshim/internal/controller/network/save/payload_pb.js";
export * as scsi from "../../gen/github.com/Microsoft/hcsshim/internal/controller/device/scsi/save/payload_pb.js";
