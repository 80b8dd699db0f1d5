/**
 * hcsshim's sandbox live-migration service (`Migration`): its prebuilt
 * bindings, the reference server and the backend interface it hands every VM
 * operation to, the orchestrator that drives two shims, `StatedState`, and
 * hcsshim's save envelope with its inner payloads (`save.*`, `migrationTypeRegistry`).
 * Backends: `ttrpc-es/migration/simulated` (a VM whose memory really moves)
 * and `ttrpc-es/migration/testing` (a test double).
 *
 * @module ttrpc-es/migration
 */

// Prebuilt bindings: the typed client, the server interface and registration
// helper, and the messages, so users run no generator.
export {
  MigrationServiceName,
  createMigrationClient,
  registerMigrationServer,
  type MigrationClient,
  type MigrationServer,
} from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_ttrpc.js";
export * from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_pb.js";
export * from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_options_pb.js";

// The reference server.
export { createMigrationServer, type MigrationServerOptions } from "./migration-server.js";
export { createMigrationService, DEFAULT_SOCKET_WAIT_MS } from "./migration-service.js";
export type { MigrationService, MigrationServiceOptions, MigrationSessionInfo } from "./migration-service.js";
export type { MigrationState } from "./session-state.js";
export { MigrationInvalidStateError } from "./migration-errors.js";
export { toPhaseState } from "./notifier.js";
export { initializeOptionsFromProto } from "./init-options.js";

// The rules a Task service in the same shim applies, and hcsshim's migration annotations.
export {
  KUBERNETES_CONTAINER_TYPE,
  LIVE_MIGRATION_SOURCE_CONTAINER_ID,
  LIVE_MIGRATION_SUPPORT_ENABLED,
} from "./task-rules.js";
export type { MigrationTaskRules, RecreateContainerRequest } from "./task-rules.js";

// hcsshim's save envelope and the inner payloads, and the typeurl registry
// that opens an exported config (StatedState and every save payload).
export {
  CONTAINER_PAYLOAD_TYPE_URL,
  POD_PAYLOAD_TYPE_URL,
  SAVE_PAYLOAD_TYPE_URL,
  SAVE_SCHEMA_VERSION,
  decodeSandboxConfig,
  decodeSavePayload,
  encodeSandboxConfig,
  encodeSavePayload,
  importedContainers,
  migrationTypeRegistry,
  saveFiles,
} from "./save-payload.js";
export type { ImportedContainer, SavePayload } from "./save-payload.js";
/**
 * hcsshim's save payloads, one namespace per file: `save.migration.Payload`
 * is the envelope, `save.vm.Payload` the VM's.
 */
export * as save from "./save-payloads.js";

// The backend interface, and the HCS session number a backend derives from a
// session id (as hcsshim does for its socket and endpoint).
export type {
  AttachSocketRequest,
  BackendSession,
  BlackoutReport,
  FinalizeOutcome,
  FinalizeRequest,
  FinalizeResult,
  ImportSandboxRequest as BackendImportSandboxRequest,
  MigrationBackend,
  PrepareDestinationRequest,
  PrepareSourceRequest,
  ProgressPhase,
  SessionRequest,
  TransferReporter,
  TransferRequest,
  TransferResult,
} from "./backend.js";
export { normalizeSessionId, sessionNumber } from "./session-number.js";

// The orchestrator.
export { migrate } from "./orchestrator.js";
export type {
  MigrateOptions,
  MigrationEvent,
  MigrationResult,
  MigrationSide,
  MigrationStep,
  SideOutcome,
} from "./orchestrator-types.js";

// StatedState, the sandbox state the source exports and the destination imports.
export {
  STATED_STATE_SCHEMA_VERSION,
  StatedStateType,
  decodeStatedState,
  encodeStatedState,
  hcsMigrationOptions,
} from "./stated-state.js";
export type {
  HcsMemoryTransferThrottleParams,
  HcsMigrationOptions,
  HcsMigrationOrigin,
  StatedContainer,
  StatedContainerState,
  StatedGuestOs,
  StatedMemory,
  StatedState,
  StatedVm,
} from "./stated-state.js";
