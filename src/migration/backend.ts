/**
 * The seam between the reference Migration server and whatever moves the VM.
 *
 * The server (see `createMigrationService`) owns everything the wire contract
 * fixes: session ids, the state machine, status codes, the finalize matrix,
 * the 10-minute socket wait and the Notifications stream. Every VM operation
 * is handed to a {@link MigrationBackend}: the simulated backend
 * (`src/migration/simulated/`) moves a real memory image over a socket, the
 * in-memory testing backend scripts outcomes, and a user can plug in their
 * own.
 *
 * One backend instance serves one shim, i.e. one sandbox, and sees at most
 * one session at a time; the server never calls two backend methods of the
 * same session concurrently except {@link MigrationBackend.transfer} (which
 * runs in the background) together with {@link MigrationBackend.cancel}.
 *
 * Errors: a method may throw a `TtrpcError`; its code reaches the caller of
 * the RPC unchanged. Anything else becomes INTERNAL for the synchronous RPCs
 * and PHASE_FAILED (SOURCE_FAILED / DESTINATION_FAILED) for the transfer.
 *
 * @module
 */
import type { Phase, PhaseState } from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_options_pb.js";
import type { HcsMigrationOptions, HcsMigrationOrigin, StatedState } from "./stated-state.js";

/** What every backend call knows about the session. */
export interface BackendSession {
  /** The migration's `session_id` exactly as the client sent it. */
  readonly sessionId: string;
  /** The HCS session number both hosts derive from the id (`sessionNumber`). */
  readonly sessionNumber: number;
  /** Which side this shim is. */
  readonly origin: HcsMigrationOrigin;
}

/** PrepareAndExportSandbox, handed to {@link MigrationBackend.prepareSource}. */
export interface PrepareSourceRequest extends BackendSession {
  readonly origin: "Source";
  /** The request's `init_options` in the HCS form, `Origin: "Source"`, already validated. */
  readonly options: HcsMigrationOptions;
  /** Aborted when the RPC's client goes away or its deadline passes. */
  readonly signal: AbortSignal;
}

/** ImportSandbox, handed to {@link MigrationBackend.importSandbox}. */
export interface ImportSandboxRequest extends BackendSession {
  readonly origin: "Destination";
  /** The request's `sandbox_id`: the sandbox's id on this host (may differ from `state.sandboxId`). */
  readonly sandboxId: string;
  /** The source's exported state, decoded and validated (`decodeStatedState`). */
  readonly state: StatedState;
  readonly signal: AbortSignal;
}

/** PrepareSandbox, handed to {@link MigrationBackend.prepareDestination}. */
export interface PrepareDestinationRequest extends BackendSession {
  readonly origin: "Destination";
  /** The request's `init_options` in the HCS form, `Origin: "Destination"`, already validated. */
  readonly options: HcsMigrationOptions;
  /** The state ImportSandbox received. */
  readonly state: StatedState;
  readonly signal: AbortSignal;
}

/** CreateDuplicateSocket, handed to {@link MigrationBackend.attachSocket}. */
export interface AttachSocketRequest<E> extends BackendSession {
  /** What {@link MigrationBackend.parseEndpoint} returned for the request's `protocol_info`. */
  readonly endpoint: E;
  readonly signal: AbortSignal;
}

/** The progress phases a transfer reports; the server sends each with PHASE_STATE_SUCCESS. */
export type ProgressPhase = Phase.SETUP_DONE | Phase.TRANSFER_IN_PROGRESS | Phase.BLACKOUT_STARTED | Phase.OFFLINE_DONE;

/** The measured blackout, sent as `BlackoutExitedEventDetails`. */
export interface BlackoutReport {
  /** How long the guest was paused, in milliseconds (fractions allowed; rounded on the wire). */
  readonly durationMs: number;
  /** When the blackout ended, in milliseconds since the Unix epoch (fractions allowed, kept as nanos). */
  readonly stoppedAtMs: number;
}

/**
 * How a running transfer reports progress. Each call becomes one
 * Notification to every subscriber, in call order. Calls after the transfer
 * settled are ignored.
 */
export interface TransferReporter {
  /** A progress phase was reached (SETUP_DONE, TRANSFER_IN_PROGRESS, BLACKOUT_STARTED, OFFLINE_DONE). */
  phase(phase: ProgressPhase): void;
  /**
   * The blackout ended: BLACKOUT_EXITED with `blackout_exited` details. Fields
   * left out are measured by the server: the duration from the
   * BLACKOUT_STARTED it sent (0 if none) and the stop time as now.
   */
  blackoutExited(report?: Partial<BlackoutReport>): void;
}

/** TransferSandbox, handed to {@link MigrationBackend.transfer} once the socket is attached. */
export interface TransferRequest<E> extends BackendSession {
  /** The attached endpoint (from CreateDuplicateSocket). */
  readonly endpoint: E;
  /** The options the side was prepared with (PrepareAndExportSandbox or PrepareSandbox). */
  readonly options: HcsMigrationOptions;
  /** The sandbox state: the exported one on the source, the imported one on the destination. */
  readonly state: StatedState;
  /**
   * Aborted by Cancel (reason: a CANCELLED TtrpcError) or by Cleanup. The
   * transfer should stop promptly and settle; the server then reports
   * PHASE_FAILED with PHASE_STATE_CANCELLED whatever the transfer returns.
   */
  readonly signal: AbortSignal;
  /** Where progress goes. */
  readonly report: TransferReporter;
}

/**
 * How a transfer ended. Success becomes PHASE_DONE / PHASE_STATE_SUCCESS;
 * a failure becomes PHASE_FAILED with `state`, e.g. PHASE_STATE_CANCELLED
 * when the projected blackout passed `blackout_time_threshold_for_cancelling_migration`,
 * PHASE_STATE_GUEST_INITIATED_CANCELLATION, PHASE_STATE_DESTINATION_FAILED
 * on a checksum mismatch. Throwing instead is a failure with the side's
 * default state (SOURCE_FAILED on the source, DESTINATION_FAILED on the
 * destination).
 */
export type TransferResult =
  | {
      readonly ok: true;
      /**
       * The result HCS gave with PHASE_DONE; default SUCCESS. PHASE_STATE_UNSPECIFIED
       * stands for "no result", which hcsshim passes on as is (`ToPhaseState`).
       */
      readonly state?: PhaseState;
    }
  | {
      readonly ok: false;
      /** The PhaseState of the PHASE_FAILED notification. */
      readonly state: PhaseState;
      /** Why, for logs. */
      readonly message: string;
      readonly cause?: unknown;
    };

/** How a FinalizeSandbox ended the migration on this side. */
export type FinalizeOutcome =
  /** Source STOP: the migration succeeded, tear the source VM down. */
  | "source-stop"
  /** Source RESUME: the migration failed or was cancelled, roll back and run the VM again. */
  | "source-resume"
  /** Destination STOP: the migration failed or was cancelled, discard the destination VM. */
  | "destination-stop"
  /** Destination RESUME: the migration succeeded, start running the destination VM. */
  | "destination-resume";

/** FinalizeSandbox, handed to {@link MigrationBackend.finalize}. */
export interface FinalizeRequest extends BackendSession {
  readonly outcome: FinalizeOutcome;
  /** How the session got here: the transfer completed, it failed, or it was cancelled. */
  readonly from: "completed" | "failed" | "cancelled";
  readonly signal: AbortSignal;
}

/**
 * What a finalize did, when the server should say more than nothing.
 * `recovered` on a source RESUME after a failed or cancelled migration makes
 * the server send PHASE_RECOVERY_DONE (SUCCESS when true, RECOVERY_FAILED
 * when false); leaving it out on such a RESUME counts as recovered.
 */
export interface FinalizeResult {
  readonly recovered?: boolean;
}

/** Cancel or Cleanup, handed to {@link MigrationBackend.cancel} / {@link MigrationBackend.cleanup}. */
export interface SessionRequest extends BackendSession {
  readonly signal: AbortSignal;
}

/**
 * The VM operations of a Migration shim. `E` is the backend's parsed
 * endpoint (socket descriptor) type: the server stores it without looking
 * into it, so the server stays transport-agnostic.
 */
export interface MigrationBackend<E = unknown> {
  /**
   * Source, PrepareAndExportSandbox: arm the migration (the VM becomes
   * immutable, "migrating") and return the sandbox state to export. The
   * server packs it in hcsshim's save envelope (`encodeSandboxConfig`) and returns it as `config`.
   * Throwing leaves the session Idle.
   */
  prepareSource(request: PrepareSourceRequest): Promise<StatedState>;

  /**
   * Destination, ImportSandbox: rebuild the shim's state from the source's
   * export. No VM is created yet. Throwing leaves the session Idle.
   */
  importSandbox(request: ImportSandboxRequest): Promise<void>;

  /**
   * Destination, PrepareSandbox: create the destination VM, not started.
   * Throwing leaves the session DestinationImported.
   */
  prepareDestination(request: PrepareDestinationRequest): Promise<void>;

  /**
   * CreateDuplicateSocket, first step: parse and strictly validate
   * `protocol_info` (on Windows a `WSAPROTOCOL_INFOW`; the simulated backend
   * has its own versioned endpoint descriptor). Must throw a TtrpcError with
   * INVALID_ARGUMENT for anything malformed and must not acquire resources:
   * nothing is released if it throws. Called, as the real shim makes the
   * socket, after the session id, ALREADY_EXISTS and state checks passed; as
   * there, a throw sends the session to Failed.
   */
  parseEndpoint(protocolInfo: Uint8Array, session: BackendSession): E;

  /**
   * CreateDuplicateSocket, second step: adopt the socket the endpoint names
   * (the real shim's `WSASocket`, which rejects an unconnected socket).
   * Must not wait for the peer host to make its own CreateDuplicateSocket
   * call: orchestrators call the two hosts in sequence, so a rendezvous that
   * needs both belongs in {@link transfer}. Throwing (with any code; INVALID_ARGUMENT
   * for an endpoint that turns out unusable, FAILED_PRECONDITION for an
   * unconnected socket) leaves no socket attached and sends the session to
   * Failed, as hcsshim does; the backend releases whatever it acquired.
   */
  attachSocket(request: AttachSocketRequest<E>): Promise<void>;

  /**
   * TransferSandbox, in the background once a socket is attached: run the
   * memory transfer (pre-copy brownout passes, blackout, device state) and
   * report phases through `request.report`. Resolve when it is over on this
   * side. The server turns the result into the terminal notification.
   */
  transfer(request: TransferRequest<E>): Promise<TransferResult>;

  /**
   * Cancel: the orchestrator aborts the migration. The server aborts a
   * running transfer's signal before calling this, and waits for the
   * transfer to settle after. Optional: a backend with nothing to do besides
   * the signal leaves it out.
   */
  cancel?(request: SessionRequest): Promise<void>;

  /**
   * FinalizeSandbox: act on the finalize matrix (see {@link FinalizeOutcome}).
   * Called once per session, and again only for a STOP after a RESUME whose
   * {@link resume} failed (hcsshim then terminates the resumed VM); repeats
   * and no-op combinations (STOP on a cancelled destination) never reach the
   * backend.
   */
  finalize(request: FinalizeRequest): Promise<FinalizeResult | undefined>;

  /**
   * FinalizeSandbox RESUME, after {@link finalize}: resume the VM and its pods
   * (hcsshim's VM and pod Resume). Optional. Throwing fails the RPC and leaves
   * the session where it was with the VM finalized: a repeated RESUME calls
   * only this again, a STOP calls {@link finalize} with the side's stop outcome.
   */
  resume?(request: FinalizeRequest): Promise<void>;

  /**
   * Cleanup, always last: close the socket and release everything of the
   * session. Also called when a session ends without Finalize (Cleanup of a
   * cancelled destination). Must not throw for a session in any state.
   */
  cleanup(request: SessionRequest): Promise<void>;
}
