// The reference server's state machine, rule for rule hcsshim's migration
// controller (internal/controller/migration): one session at a time, the
// session check against the active id ("" while Idle), the state checks in
// hcsshim's order, and what each failure leaves behind.
import type { Any } from "@bufbuild/protobuf/wkt";
import type { NotificationsResponse } from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_pb.js";
import { FinalizeAction } from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_pb.js";
import { Phase, PhaseState } from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_options_pb.js";
import type { FinalizeOutcome, FinalizeRequest, MigrationBackend } from "./backend.js";
import {
  alreadyExists,
  backendError,
  cancelled,
  invalid,
  MigrationInvalidStateError,
  plain,
  precondition,
  sessionMismatch,
} from "./migration-errors.js";
import { MigrationSession } from "./migration-session.js";
import type { NotifierOptions } from "./notifier.js";
import { normalizeSessionId } from "./session-number.js";
import { CANCEL_NOOP_STATES, FINALIZE_STATES, SOCKET_STATES, TRANSFER_NOOP_STATES } from "./session-state.js";
import { decodeSavePayload, encodeSandboxConfig, importedContainers } from "./save-payload.js";
import { decodeStatedState, type HcsMigrationOptions } from "./stated-state.js";
import {
  KUBERNETES_CONTAINER_TYPE,
  LIVE_MIGRATION_SOURCE_CONTAINER_ID,
  type MigrationTaskRules,
  type RecreateContainerRequest,
} from "./task-rules.js";
import { TransferRun, type TransferHost } from "./transfer-run.js";

export interface ControllerOptions {
  readonly notifier: NotifierOptions;
  readonly now: () => number;
  readonly onError: (error: unknown) => void;
  readonly trackContainers: boolean;
}

/** ImportSandbox's request, its envelope not yet opened. */
export interface ImportRequest {
  readonly sessionId: string;
  readonly sandboxId: string;
  readonly config?: Any | undefined;
}

export class MigrationController<E> implements TransferHost<E>, MigrationTaskRules {
  private session: MigrationSession<E> | undefined;

  constructor(
    readonly backend: MigrationBackend<E>,
    private readonly options: ControllerOptions,
  ) {}

  get current(): MigrationSession<E> | undefined {
    return this.session;
  }

  now(): number {
    return this.options.now();
  }

  owns(s: MigrationSession<E>): boolean {
    return this.session === s;
  }

  // hcsshim compares with the active id, which is "" while Idle: an empty id
  // passes then, and the state check that follows decides.
  private check(sessionId: string): MigrationSession<E> | undefined {
    const active = this.session?.sessionId ?? "";
    if (active !== sessionId) throw sessionMismatch(sessionId, active);
    return this.session;
  }

  private ensureNoSession(sessionId: string): void {
    if (sessionId === "") throw invalid("session id is required");
    const s = this.session;
    if (s !== undefined)
      throw precondition(`controller is in state ${s.state} for session ${JSON.stringify(s.sessionId)}`);
  }

  private newSession(sessionId: string, origin: "Source" | "Destination", state: MigrationSession<E>["state"]) {
    return new MigrationSession<E>(sessionId, origin, state, this.options.notifier);
  }

  async prepareSource(sessionId: string, options: HcsMigrationOptions, signal: AbortSignal): Promise<Any> {
    this.ensureNoSession(sessionId);
    const s = this.newSession(sessionId, "Source", "SourcePrepared");
    s.options = options;
    let stated;
    try {
      stated = await this.backend.prepareSource({ ...s.ident(), origin: "Source", options, signal });
    } catch (e) {
      throw backendError(e, "initialize live migration on source vm");
    }
    this.session = s;
    // The export names the session that made it, whatever the backend wrote.
    s.stated = { ...stated, sessionId };
    try {
      const config = encodeSandboxConfig(s.stated);
      s.state = "SourceExported";
      return config;
    } catch (e) {
      // The VM is armed but nothing left: the orchestrator winds it down.
      s.state = "Failed";
      throw e;
    }
  }

  async importState(request: ImportRequest, signal: AbortSignal): Promise<void> {
    const { sessionId, sandboxId } = request;
    if (sessionId === "") throw invalid("session id is required");
    if (sandboxId === "") throw invalid("sandbox id is required");
    const payload = decodeSavePayload(request.config);
    this.ensureNoSession(sessionId);
    const containers = importedContainers(payload);
    const stated = decodeStatedState(payload.vm);
    if (normalizeSessionId(stated.sessionId) !== normalizeSessionId(sessionId)) {
      throw invalid(
        `config was exported by session ${JSON.stringify(stated.sessionId)}, not ${JSON.stringify(sessionId)}`,
      );
    }
    const s = this.newSession(sessionId, "Destination", "DestinationImported");
    try {
      await this.backend.importSandbox({ ...s.ident(), origin: "Destination", sandboxId, state: stated, signal });
    } catch (e) {
      throw backendError(e, "import vm controller");
    }
    s.stated = stated;
    if (this.options.trackContainers) for (const c of containers) s.pending.set(c.containerId, c.podId);
    this.session = s;
  }

  async prepareDestination(sessionId: string, options: HcsMigrationOptions, signal: AbortSignal): Promise<void> {
    const s = this.check(sessionId);
    if (s?.state !== "DestinationImported") {
      throw precondition(`prepare destination not valid in state ${s?.state ?? "Idle"}`);
    }
    const pending = this.pendingContainers();
    if (pending.length > 0) {
      throw precondition(`${pending.length} container patches still pending [${pending.join(", ")}]`);
    }
    try {
      await this.backend.prepareDestination({ ...s.ident(), origin: "Destination", options, state: s.stated!, signal });
    } catch (e) {
      throw backendError(e, "create destination vm");
    }
    s.options = options;
    s.state = "DestinationPrepared";
  }

  async registerSocket(sessionId: string, protocolInfo: Uint8Array, signal: AbortSignal): Promise<void> {
    // hcsshim checks the size of a WSAPROTOCOL_INFOW first; no descriptor is empty.
    if (protocolInfo.length === 0) throw invalid("protocol info is 0 bytes");
    const s = this.check(sessionId);
    if (s?.socketClaimed) {
      throw alreadyExists(`duplicate socket already registered for session ${JSON.stringify(sessionId)}`);
    }
    if (s === undefined || !SOCKET_STATES.has(s.state)) {
      throw precondition(`invalid register duplicate socket state (current: ${s?.state ?? "Idle"})`);
    }
    s.socketClaimed = true;
    try {
      const endpoint = this.backend.parseEndpoint(protocolInfo, s.ident());
      await this.backend.attachSocket({ ...s.ident(), endpoint, signal });
      // Cancel or Cleanup may have come while attaching.
      if (this.session === s && SOCKET_STATES.has(s.state)) {
        s.endpoint = { value: endpoint };
        s.state = "SocketReady";
      }
    } catch (e) {
      // Any failure past the state check fails the session and wakes a waiting transfer.
      s.socketClaimed = false;
      if (this.session === s && SOCKET_STATES.has(s.state)) s.state = "Failed";
      throw backendError(e, "register duplicate socket");
    } finally {
      s.socketSettled.resolve();
    }
  }

  transfer(sessionId: string, waitMs: number): void {
    const s = this.check(sessionId);
    if (s !== undefined && TRANSFER_NOOP_STATES.has(s.state)) return;
    if (s?.state === "SourceExported" || s?.state === "DestinationPrepared") s.state = "SocketWaiting";
    else if (s?.state !== "SocketReady") throw precondition(`transfer not valid in state ${s?.state ?? "Idle"}`);
    if (s.transfer !== undefined) return; // already driven by an earlier call
    s.transfer = new TransferRun(this, s, waitMs).run().catch((e: unknown) => this.options.onError(e));
  }

  failTransfer(s: MigrationSession<E>, error: unknown): void {
    if (s.state === "Cancelling" || s.state === "Cancelled" || !this.owns(s)) return;
    s.state = "Failed";
    this.options.onError(error);
    s.announceFailure();
  }

  subscribe(sessionId: string, signal: AbortSignal): AsyncIterable<NotificationsResponse> {
    const s = this.check(sessionId);
    // hcsshim has no VM to ask for notifications while Idle (it would fail there too).
    if (s === undefined) throw precondition("no migration session is active");
    const stream = s.subscribe(signal);
    if (stream === undefined) throw precondition("migration session already terminated");
    return stream;
  }

  async finalize(sessionId: string, action: FinalizeAction, signal: AbortSignal): Promise<void> {
    if (action === FinalizeAction.UNSPECIFIED) throw invalid("finalize action must be specified");
    const s = this.check(sessionId);
    if (s === undefined || s.state === "Finalized") return;
    const resume = action === FinalizeAction.RESUME;
    if (s.origin === "Destination" && s.state === "Cancelled" && !resume) return;
    if (!FINALIZE_STATES.has(s.state)) throw precondition(`finalize not valid in state ${s.state}`);
    if (!resume && action !== FinalizeAction.STOP) throw invalid(`unsupported finalize action ${action}`);
    const request = this.finalizeRequest(s, resume, signal);
    // After a RESUME whose resume failed the VM is finalized: a RESUME only
    // resumes again, a STOP terminates it. (A STOP ends in Finalized at once,
    // so hcsshim's RESUME-after-terminate cannot arise here.)
    if (!(s.vmResumed && resume)) await this.backendFinalize(s, request);
    if (resume) await this.resume(request);
    s.state = "Finalized";
  }

  private finalizeRequest(s: MigrationSession<E>, resume: boolean, signal: AbortSignal): FinalizeRequest {
    const side = s.origin === "Source" ? "source" : "destination";
    const outcome: FinalizeOutcome = `${side}-${resume ? "resume" : "stop"}`;
    const from = s.state === "TransferCompleted" ? "completed" : s.state === "Failed" ? "failed" : "cancelled";
    return { ...s.ident(), outcome, from, signal };
  }

  // HCS's finalize, or on a STOP after a RESUME whose resume failed, the
  // termination of the resumed VM.
  private async backendFinalize(s: MigrationSession<E>, request: FinalizeRequest): Promise<void> {
    let result;
    try {
      result = await this.backend.finalize(request);
    } catch (e) {
      throw backendError(e, "finalize live migration");
    }
    s.vmResumed = request.outcome.endsWith("resume");
    if (request.outcome === "source-resume" && request.from !== "completed") {
      s.report(Phase.RECOVERY_DONE, (result?.recovered ?? true) ? PhaseState.SUCCESS : PhaseState.RECOVERY_FAILED);
    }
  }

  private async resume(request: FinalizeRequest): Promise<void> {
    try {
      await this.backend.resume?.(request);
    } catch (e) {
      throw backendError(e, "resume vm from migration");
    }
  }

  async cancel(sessionId: string, signal: AbortSignal): Promise<void> {
    const s = this.check(sessionId);
    if (s === undefined || CANCEL_NOOP_STATES.has(s.state)) return;
    if (s.state === "Finalized") throw precondition("cancel not valid in state Finalized");
    if (s.state === "DestinationImported") {
      s.state = "Cancelled"; // no VM yet: nothing to abort
      return;
    }
    s.state = "Cancelling";
    s.abort.abort(cancelled("migration cancelled"));
    try {
      await this.backend.cancel?.({ ...s.ident(), signal });
      await s.transfer;
    } catch (e) {
      // The transfer had finished: Cancelled all the same, and the RPC still fails.
      s.state = e instanceof MigrationInvalidStateError ? "Cancelled" : "Failed";
      throw e instanceof MigrationInvalidStateError ? e : backendError(e, "cancel live migration");
    }
    s.state = "Cancelled";
    s.report(Phase.FAILED, PhaseState.CANCELLED);
  }

  async cleanup(sessionId: string, signal: AbortSignal): Promise<void> {
    if (this.session === undefined) return; // Idle: OK whatever the id
    const s = this.check(sessionId)!;
    const ok = s.state === "Finalized" || (s.origin === "Destination" && s.state === "Cancelled");
    if (!ok) throw precondition(`cleanup not valid for ${s.origin} in state ${s.state}`);
    await this.end(s, signal).catch((e: unknown) => this.options.onError(e));
  }

  /** Ends any session whatever its state, as Cleanup would (for shutting a shim down). */
  async close(): Promise<void> {
    const s = this.session;
    if (s !== undefined) await this.end(s, new AbortController().signal).catch((e: unknown) => this.options.onError(e));
  }

  // The socket wait and transfer stop, the backend releases everything, the
  // Notifications streams end.
  private async end(s: MigrationSession<E>, signal: AbortSignal): Promise<void> {
    s.abort.abort(cancelled("migration session cleaned up"));
    // Streams end first: a Notifications call while the backend cleans up is
    // FAILED_PRECONDITION, as hcsshim's closed notifier answers.
    s.end();
    try {
      await this.backend.cleanup({ ...s.ident(), signal });
    } finally {
      if (this.session === s) this.session = undefined;
    }
  }

  ensureIdle(): void {
    const s = this.session;
    if (s !== undefined) throw precondition(`migration session is in progress (state: ${s.state})`);
  }

  isRecreation(annotations: Readonly<Record<string, string>> | undefined): boolean {
    return annotations?.[LIVE_MIGRATION_SOURCE_CONTAINER_ID] !== undefined;
  }

  recreateContainer(request: RecreateContainerRequest): string {
    if (request.id === "") throw invalid("destination container id is required");
    const sourceId = request.annotations?.[LIVE_MIGRATION_SOURCE_CONTAINER_ID] ?? "";
    if (sourceId === "") throw invalid(`annotation ${JSON.stringify(LIVE_MIGRATION_SOURCE_CONTAINER_ID)} is required`);
    const s = this.session;
    if (s?.state !== "DestinationImported") throw precondition(`patch not valid in state ${s?.state ?? "Idle"}`);
    const podId = s.pending.get(sourceId);
    if (podId === undefined) throw plain(`source container ${JSON.stringify(sourceId)} is not pending a patch`);
    const type = request.annotations?.[KUBERNETES_CONTAINER_TYPE];
    if (type !== undefined && type !== "" && (type === "sandbox") !== (sourceId === podId)) {
      throw invalid(
        `annotation ${JSON.stringify(KUBERNETES_CONTAINER_TYPE)}=${JSON.stringify(type)} disagrees with ` +
          "structural sandbox detection " +
          `(sourceContainerID=${JSON.stringify(sourceId)}, sourcePodID=${JSON.stringify(podId)})`,
      );
    }
    s.pending.delete(sourceId);
    return sourceId;
  }

  pendingContainers(): string[] {
    return [...(this.session?.pending.keys() ?? [])].sort();
  }
}
