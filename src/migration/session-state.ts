/**
 * The states of a migration session, named as the real shim names them
 * (hcsshim's migration controller, `State*`).
 *
 * Source:      Idle → SourcePrepared → SourceExported
 * Destination: Idle → DestinationImported → DestinationPrepared
 * Both:        → SocketReady (or SocketWaiting when TransferSandbox comes
 *              before the socket) → Transferring → TransferCompleted
 *              → Finalized → (Cleanup) → Idle
 * Cancelling, Cancelled and Failed join at FinalizeSandbox or Cleanup.
 */
export type MigrationState =
  | "Idle"
  | "SourcePrepared"
  | "SourceExported"
  | "DestinationImported"
  | "DestinationPrepared"
  | "SocketReady"
  | "SocketWaiting"
  | "Transferring"
  | "TransferCompleted"
  | "Finalized"
  | "Cancelling"
  | "Cancelled"
  | "Failed";

/** States CreateDuplicateSocket accepts. */
export const SOCKET_STATES: ReadonlySet<MigrationState> = new Set([
  "SourceExported",
  "DestinationPrepared",
  "SocketWaiting",
]);

/** States in which TransferSandbox is a no-op: a transfer is already waiting, running or done. */
export const TRANSFER_NOOP_STATES: ReadonlySet<MigrationState> = new Set([
  "SocketWaiting",
  "Transferring",
  "TransferCompleted",
]);

/** States FinalizeSandbox acts in (Finalized itself is a no-op). */
export const FINALIZE_STATES: ReadonlySet<MigrationState> = new Set(["TransferCompleted", "Cancelled", "Failed"]);

/** States in which Cancel is a no-op. */
export const CANCEL_NOOP_STATES: ReadonlySet<MigrationState> = new Set(["Idle", "Cancelling", "Cancelled"]);
