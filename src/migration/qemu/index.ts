/**
 * `ttrpc-es/migration/qemu`: a `MigrationBackend` (`ttrpc-es/migration`) that moves a real
 * running QEMU VM with QEMU's own live migration, driven over QMP, plus the
 * QMP client and VM description it is built on. Importing it loads nothing
 * else: `koffi` (optional) is loaded only when a socket is passed by fd.
 *
 * @module
 */
export { createQemuBackend, QemuBackend, type QemuBackendEvent, type QemuBackendOptions } from "./qemu-backend.js";
export type { QemuSocketMode } from "./migration-socket.js";
export {
  FORCE_DOWNTIME_LIMIT_MS,
  type QemuMigrationStats,
  type SourceLimits,
  type SourceProgress,
} from "./qemu-source-transfer.js";
export { SPEC_ANNOTATION, VERSION_ANNOTATION } from "./qemu-export.js";
export {
  DEFAULT_MACHINE_TYPE,
  deviceModelArgv,
  probeQemu,
  QemuProcess,
  specProblem,
  type QemuExit,
  type QemuStartOptions,
  type QemuVmSpec,
} from "./qemu-vm.js";
export { SerialLog } from "./serial-log.js";
export {
  QmpClient,
  QmpClosedError,
  QmpCommandError,
  QmpProtocolError,
  type QemuVersion,
  type QmpConnectOptions,
  type QmpEvent,
} from "./qmp-client.js";
export { FdPassingError, sendWithFd } from "../../fd-passing.js";
