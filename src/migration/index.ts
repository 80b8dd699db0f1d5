export { normalizeSessionId, sessionNumber } from "./session-number.js";
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

// The reference Migration server and its backend seam.
export { createMigrationService, DEFAULT_SOCKET_WAIT_MS } from "./migration-service.js";
export type { MigrationService, MigrationServiceOptions, MigrationSessionInfo } from "./migration-service.js";
export { createMigrationServer, type MigrationServerOptions } from "./migration-server.js";
export type { MigrationState } from "./session-state.js";
export { createNotifier, NOTIFICATION_BUFFER_SIZE, type Notifier, type NotifierOptions } from "./notifier.js";
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
export { createTestingBackend, testingEndpoint } from "./testing-backend.js";
export type {
  TestingBackend,
  TestingBackendOptions,
  TestingCall,
  TestingEndpoint,
  TestingOperation,
  TestingTransfer,
} from "./testing-backend.js";

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

// Issue 6: the orchestrator and the simulated backend (real pre-copy memory transfer).
export { migrate } from "./orchestrator.js";
export type {
  MigrateOptions,
  MigrationEvent,
  MigrationResult,
  MigrationSide,
  MigrationStep,
  SideOutcome,
} from "./orchestrator.js";
export {
  createSimulatedBackend,
  SimulatedBackend,
  DIRTY_RATE_ANNOTATION,
  createEndpointPair,
  encodeEndpointDescriptor,
  parseEndpointDescriptor,
  ENDPOINT_DESCRIPTOR_MAGIC,
  ENDPOINT_DESCRIPTOR_VERSION,
  SimulatedVm,
  MemoryImage,
  GuestWorkload,
  preCopyParams,
  PRE_COPY_DEFAULTS,
  DEFAULT_MEMORY_BYTES,
  DEFAULT_DIRTY_PAGES_PER_SECOND,
  WIRE_VERSION as SIMULATED_WIRE_VERSION,
} from "./simulated/index.js";
export type {
  SimulatedBackendOptions,
  EndpointDescriptor,
  EndpointRole,
  EndpointTransport,
  SimulatedVmOptions,
  SimulatedVmStatus,
  DeviceState,
  MemoryImageOptions,
  GuestWorkloadState,
  PreCopyParams,
  SourceFaults,
  TransferEvent,
  TransferObserver,
  TransferStats,
} from "./simulated/index.js";
