/**
 * What the orchestrator (orchestrator.ts) takes and reports: its options,
 * its events as they happen, and how a run ended on both sides.
 *
 * @module
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type {
  InitializeOptionsSchema,
  Phase,
  PhaseState,
} from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_options_pb.js";
import type { MigrationClient } from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_ttrpc.js";
import type { EndpointTransport } from "./endpoint-descriptor.js";

/** Which shim an event or outcome is about. */
export type MigrationSide = "source" | "destination";

/** The workflow's RPCs, as they appear in events. */
export type MigrationStep =
  | "PrepareAndExportSandbox"
  | "ImportSandbox"
  | "PrepareSandbox"
  | "CreateDuplicateSocket"
  | "Notifications"
  | "TransferSandbox"
  | "FinalizeSandbox"
  | "Cancel"
  | "Cleanup";

/** What the orchestrator reports while it runs (all times in ms since `migrate` started). */
export type MigrationEvent =
  | {
      readonly type: "step";
      readonly side: MigrationSide;
      readonly step: MigrationStep;
      readonly detail?: string;
      readonly atMs: number;
      readonly ms: number;
      readonly error?: string;
    }
  | {
      readonly type: "notification";
      readonly side: MigrationSide;
      readonly phase: Phase;
      readonly state: PhaseState;
      readonly messageId: number;
      readonly atMs: number;
      /** BLACKOUT_EXITED only. */
      readonly blackoutMs?: number;
    }
  | { readonly type: "abort"; readonly reason: string; readonly atMs: number };

/** How a side ended, as its notifications said. */
export type SideOutcome = "done" | "failed" | "cancelled" | "unreachable" | "not-started";

/** How a {@link migrate} run ended, on both sides. */
export interface MigrationResult {
  /** True only when both sides reported DONE, the destination runs and the source is stopped. */
  readonly ok: boolean;
  readonly sessionId: string;
  /** Why it failed (the first cause). */
  readonly error?: string;
  readonly source: SideOutcome;
  readonly destination: SideOutcome;
  /** The source's measured blackout from BLACKOUT_EXITED, ms. */
  readonly blackoutMs?: number;
  /** Whether the source reported RECOVERY_DONE / SUCCESS after the abort path. */
  readonly recovered?: boolean;
  /** Every notification, both sides, in arrival order. */
  readonly notifications: readonly Extract<MigrationEvent, { type: "notification" }>[];
  /** Errors of the abort path (each step is attempted anyway). */
  readonly abortErrors: readonly string[];
  readonly durationMs: number;
}

/** What {@link migrate} drives: the two shims, the sandbox and the workflow's knobs. */
export interface MigrateOptions {
  /** The source shim: a connected client, or a ttrpc address to dial (closed at the end). */
  readonly source: MigrationClient | string;
  readonly destination: MigrationClient | string;
  /** Default: a random UUID. */
  readonly sessionId?: string;
  /** The sandbox id on the destination. Default: the source's, read from the exported state. */
  readonly sandboxId?: string;
  /** `InitializeOptions` for PrepareAndExportSandbox (and PrepareSandbox unless `destinationInitOptions`). */
  readonly initOptions: MessageInitShape<typeof InitializeOptionsSchema>;
  readonly destinationInitOptions?: MessageInitShape<typeof InitializeOptionsSchema>;
  /**
   * `protocol_info` for each side's CreateDuplicateSocket. Default: a pair of
   * simulated-backend endpoint descriptors on `transport` (the destination listens).
   */
  readonly protocolInfo?: { readonly source: Uint8Array; readonly destination: Uint8Array };
  /** For the default descriptors. Default "unix", a fresh socket path in the temp folder. */
  readonly transport?: EndpointTransport;
  /** For the default descriptors: the listening address (unix path or HOST:PORT). */
  readonly transferAddress?: string;
  /** TransferSandbox's `timeout` and the bound on waiting for the outcome. Default 10 minutes. */
  readonly timeoutMs?: number;
  /** Deadline of each unary RPC. Default 60 s. */
  readonly callTimeoutMs?: number;
  /** Aborting it runs the abort path. */
  readonly signal?: AbortSignal;
  /** Told of every step, notification and abort as it happens; a throwing listener does not stop the run. */
  readonly onEvent?: (event: MigrationEvent) => void;
}
