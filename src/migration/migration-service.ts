import type { HandlerContext } from "../service-impl.js";
import { Code } from "../code.js";
import { TtrpcError } from "../ttrpc-error.js";
import {
  Origin,
  Phase,
  PhaseState,
  type Notification,
} from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_options_pb.js";
import {
  FinalizeAction,
  type NotificationsResponse,
} from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_pb.js";
import type { MigrationServer } from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_ttrpc.js";
import type {
  BackendSession,
  BlackoutReport,
  FinalizeOutcome,
  MigrationBackend,
  ProgressPhase,
  TransferResult,
} from "./backend.js";
import { createNotifier, timestampOfMs, wallClockMs, type Notifier } from "./notifier.js";
import { normalizeSessionId, sessionNumber } from "./session-number.js";
import {
  CANCEL_NOOP_STATES,
  FINALIZE_STATES,
  SOCKET_STATES,
  TRANSFER_NOOP_STATES,
  type MigrationState,
} from "./session-state.js";
import {
  decodeStatedState,
  encodeStatedState,
  hcsMigrationOptions,
  type HcsMigrationOptions,
  type HcsMigrationOrigin,
  type StatedState,
} from "./stated-state.js";

/** How long TransferSandbox waits for the duplicated socket when `timeout` is absent or ≤ 0, as the real shim. */
export const DEFAULT_SOCKET_WAIT_MS = 10 * 60 * 1000;

/** Options of {@link createMigrationService}. */
export interface MigrationServiceOptions {
  /** Per-subscriber Notifications queue depth. Default 64, as the real shim. */
  notificationBufferSize?: number;
  /** Socket wait when TransferSandbox's `timeout` is absent or ≤ 0. Default {@link DEFAULT_SOCKET_WAIT_MS}. */
  defaultSocketWaitMs?: number;
  /** Wall clock in milliseconds since the Unix epoch, for notification timestamps and blackout times. */
  now?: () => number;
  /** Told about background transfer failures and backend errors that no RPC returns; default: silent. */
  onError?: (error: unknown) => void;
}

/** A snapshot of the service's session, for tests and diagnostics. */
export interface MigrationSessionInfo {
  readonly state: MigrationState;
  /** The active session id; "" when Idle. */
  readonly sessionId: string;
  readonly origin: HcsMigrationOrigin | undefined;
  /** Whether CreateDuplicateSocket attached a socket. */
  readonly socketAttached: boolean;
  /** Open Notifications streams. */
  readonly subscribers: number;
}

/**
 * The reference Migration service: every RPC of hcsshim's Migration
 * service with the real shim's state machine, statuses, finalize matrix and
 * Notifications, handing VM work to a {@link MigrationBackend}. Register it
 * with `registerMigrationServer(server, service)`.
 */
export interface MigrationService extends MigrationServer {
  /** The current session, for tests and diagnostics. */
  readonly session: MigrationSessionInfo;
  /**
   * Ends any session the way Cleanup would, whatever its state (for shutting
   * a shim down): aborts the transfer, calls the backend's cleanup, closes
   * the Notifications streams.
   */
  close(): Promise<void>;
}

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

// Everything of one session; a new object per session, so a stale background
// transfer can tell it no longer owns the service.
interface Session<E> extends BackendSession {
  state: MigrationState;
  notifier: Notifier;
  options: HcsMigrationOptions | undefined;
  stated: StatedState | undefined;
  /** Set while CreateDuplicateSocket runs and after it succeeded. */
  socketClaimed: boolean;
  endpoint: { value: E } | undefined;
  socketReady: Deferred;
  /** Aborted by Cancel and Cleanup: stops the socket wait and the transfer. */
  abort: AbortController;
  transfer: Promise<void> | undefined;
  blackoutStartedAt: number | undefined;
  failedState: PhaseState | undefined;
}

const IDLE_INFO: MigrationSessionInfo = {
  state: "Idle",
  sessionId: "",
  origin: undefined,
  socketAttached: false,
  subscribers: 0,
};

function invalid(message: string): TtrpcError {
  return new TtrpcError(message, Code.InvalidArgument);
}

function precondition(message: string): TtrpcError {
  return new TtrpcError(message, Code.FailedPrecondition);
}

// Backend errors keep a TtrpcError's code; anything else is INTERNAL.
function backendError(e: unknown, what: string): TtrpcError {
  if (e instanceof TtrpcError) return e;
  return new TtrpcError(`${what}: ${e instanceof Error ? e.message : String(e)}`, Code.Internal, { cause: e });
}

function requireSessionId(sessionId: string): void {
  if (sessionId === "") throw invalid("session id is required");
}

function protoOrigin(origin: HcsMigrationOrigin): Origin {
  return origin === "Source" ? Origin.SOURCE : Origin.DESTINATION;
}

/**
 * Creates the reference Migration service on a backend. One service is one
 * shim: it hosts one session at a time.
 */
export function createMigrationService<E>(
  backend: MigrationBackend<E>,
  options: MigrationServiceOptions = {},
): MigrationService {
  const now = options.now ?? wallClockMs;
  const defaultWait = options.defaultSocketWaitMs ?? DEFAULT_SOCKET_WAIT_MS;
  const onError = options.onError ?? (() => {});
  let session: Session<E> | undefined;
  // The unary RPCs run one at a time, as the real shim holds its mutex;
  // the transfer and Notifications run outside it.
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = queue.then(fn, fn);
    queue = run.catch(() => {});
    return run;
  };

  function publish(
    s: Session<E>,
    phase: Phase,
    state: PhaseState,
    blackout?: BlackoutReport,
  ): NotificationsResponse | undefined {
    const n: Partial<Notification> = { origin: protoOrigin(s.origin), phase, state };
    if (blackout !== undefined) {
      n.phaseDetails = {
        case: "blackoutExited",
        value: {
          blackoutDurationMilliseconds: BigInt(Math.max(0, Math.round(blackout.durationMs))),
          blackoutStopTimestamp: timestampOfMs(blackout.stoppedAtMs),
        } as never,
      };
    }
    return s.notifier.publish(n as Notification);
  }

  // The active session for a call that names one: empty or another id is
  // INVALID_ARGUMENT (with no session, the active id is "", as in the shim).
  function active(sessionId: string): Session<E> {
    requireSessionId(sessionId);
    if (session === undefined || session.sessionId !== sessionId) {
      throw invalid(
        `session id ${JSON.stringify(sessionId)} does not match ` +
          `active session ${JSON.stringify(session?.sessionId ?? "")}`,
      );
    }
    return session;
  }

  // The first call of a side: only from Idle.
  function starting(sessionId: string, what: string): void {
    requireSessionId(sessionId);
    if (session === undefined) return;
    if (session.sessionId !== sessionId) {
      throw invalid(
        `session id ${JSON.stringify(sessionId)} does not match active session ${JSON.stringify(session.sessionId)}`,
      );
    }
    throw precondition(`${what} not valid in state ${session.state}`);
  }

  function newSession(sessionId: string, origin: HcsMigrationOrigin, state: MigrationState): Session<E> {
    return {
      sessionId,
      sessionNumber: sessionNumber(sessionId),
      origin,
      state,
      notifier: createNotifier({
        now,
        ...(options.notificationBufferSize === undefined ? {} : { bufferSize: options.notificationBufferSize }),
      }),
      options: undefined,
      stated: undefined,
      socketClaimed: false,
      endpoint: undefined,
      socketReady: deferred(),
      abort: new AbortController(),
      transfer: undefined,
      blackoutStartedAt: undefined,
      failedState: undefined,
    };
  }

  function ident(s: Session<E>): BackendSession {
    return { sessionId: s.sessionId, sessionNumber: s.sessionNumber, origin: s.origin };
  }

  function fail(s: Session<E>, state: PhaseState, error: unknown): void {
    // Cancel owns the outcome of a session it caught mid-transfer.
    if (s.state === "Cancelling" || s.state === "Cancelled" || session !== s) return;
    s.state = "Failed";
    s.failedState = state;
    onError(error);
    publish(s, Phase.FAILED, state);
  }

  async function runTransfer(s: Session<E>, waitMs: number): Promise<void> {
    const sideFailed = s.origin === "Source" ? PhaseState.SOURCE_FAILED : PhaseState.DESTINATION_FAILED;
    let timer: NodeJS.Timeout | undefined;
    const outcome = await new Promise<"ready" | "timeout" | "aborted">((resolve) => {
      if (s.abort.signal.aborted) return resolve("aborted");
      s.abort.signal.addEventListener("abort", () => resolve("aborted"), { once: true });
      void s.socketReady.promise.then(() => resolve("ready"));
      timer = setTimeout(() => resolve("timeout"), Math.min(waitMs, 2 ** 31 - 1));
    });
    clearTimeout(timer);
    if (outcome === "aborted") return;
    if (outcome === "timeout") {
      fail(s, sideFailed, precondition(`timed out waiting for socket ready after ${waitMs} ms`));
      return;
    }
    // Only the one transfer that still finds the socket ready drives it.
    if (session !== s || s.state !== "SocketReady" || s.endpoint === undefined) return;
    s.state = "Transferring";
    let settled = false;
    const report = {
      phase(phase: ProgressPhase) {
        if (settled) return;
        if (phase === Phase.BLACKOUT_STARTED) s.blackoutStartedAt = now();
        publish(s, phase, PhaseState.SUCCESS);
      },
      blackoutExited(r: Partial<BlackoutReport> = {}) {
        if (settled) return;
        const stoppedAtMs = r.stoppedAtMs ?? now();
        const durationMs = r.durationMs ?? (s.blackoutStartedAt === undefined ? 0 : stoppedAtMs - s.blackoutStartedAt);
        publish(s, Phase.BLACKOUT_EXITED, PhaseState.SUCCESS, { durationMs, stoppedAtMs });
      },
    };
    let result: TransferResult;
    try {
      result = await backend.transfer({
        ...ident(s),
        endpoint: s.endpoint.value,
        options: s.options ?? {},
        state: s.stated!,
        signal: s.abort.signal,
        report,
      });
    } catch (e) {
      result = { ok: false, state: sideFailed, message: e instanceof Error ? e.message : String(e), cause: e };
    } finally {
      settled = true;
    }
    if (session !== s || s.state !== "Transferring") return; // cancelled or cleaned up meanwhile
    if (result.ok) {
      s.state = "TransferCompleted";
      publish(s, Phase.DONE, PhaseState.SUCCESS);
    } else {
      fail(s, result.state, result.cause ?? new Error(result.message));
    }
  }

  // Ends a session: the socket wait and transfer stop, the backend releases
  // everything, the Notifications streams end.
  async function end(s: Session<E>, signal: AbortSignal): Promise<void> {
    s.abort.abort(new TtrpcError("migration session cleaned up", Code.Canceled));
    try {
      await backend.cleanup({ ...ident(s), signal });
    } finally {
      s.notifier.close();
      if (session === s) session = undefined;
    }
  }

  const service: MigrationService = {
    get session(): MigrationSessionInfo {
      const s = session;
      if (s === undefined) return IDLE_INFO;
      return {
        state: s.state,
        sessionId: s.sessionId,
        origin: s.origin,
        socketAttached: s.endpoint !== undefined,
        subscribers: s.notifier.subscriberCount,
      };
    },

    prepareAndExportSandbox(request, context) {
      return serial(async () => {
        starting(request.sessionId, "prepare and export");
        const opts = hcsMigrationOptions(request.initOptions, "Source");
        const s = newSession(request.sessionId, "Source", "SourcePrepared");
        let stated: StatedState;
        try {
          stated = await backend.prepareSource({
            ...ident(s),
            origin: "Source",
            options: opts,
            signal: context.signal,
          });
        } catch (e) {
          s.notifier.close();
          throw backendError(e, "prepare source");
        }
        s.options = opts;
        session = s;
        // The export names the session that made it, whatever the backend wrote.
        s.stated = { ...stated, sessionId: request.sessionId };
        let config;
        try {
          config = encodeStatedState(s.stated);
        } catch (e) {
          // The VM is armed but nothing left: the orchestrator winds it down.
          s.state = "Failed";
          s.failedState = PhaseState.SOURCE_FAILED;
          throw e;
        }
        s.state = "SourceExported";
        return { config };
      });
    },

    importSandbox(request, context) {
      return serial(async () => {
        starting(request.sessionId, "import");
        if (request.sandboxId === "") throw invalid("sandbox id is required");
        const stated = decodeStatedState(request.config);
        if (normalizeSessionId(stated.sessionId) !== normalizeSessionId(request.sessionId)) {
          throw invalid(
            `config was exported by session ${JSON.stringify(stated.sessionId)}, ` +
              `not ${JSON.stringify(request.sessionId)}`,
          );
        }
        const s = newSession(request.sessionId, "Destination", "DestinationImported");
        try {
          await backend.importSandbox({
            ...ident(s),
            origin: "Destination",
            sandboxId: request.sandboxId,
            state: stated,
            signal: context.signal,
          });
        } catch (e) {
          s.notifier.close();
          throw backendError(e, "import sandbox");
        }
        s.stated = stated;
        session = s;
        return {};
      });
    },

    prepareSandbox(request, context) {
      return serial(async () => {
        const s = active(request.sessionId);
        if (s.state !== "DestinationImported") throw precondition(`prepare not valid in state ${s.state}`);
        const opts = hcsMigrationOptions(request.initOptions, "Destination");
        try {
          await backend.prepareDestination({
            ...ident(s),
            origin: "Destination",
            options: opts,
            state: s.stated!,
            signal: context.signal,
          });
        } catch (e) {
          throw backendError(e, "prepare destination");
        }
        s.options = opts;
        s.state = "DestinationPrepared";
        return {};
      });
    },

    createDuplicateSocket(request, context) {
      return serial(async () => {
        const s = active(request.sessionId);
        if (s.socketClaimed) {
          throw new TtrpcError(
            `duplicate socket already registered for session ${JSON.stringify(s.sessionId)}`,
            Code.AlreadyExists,
          );
        }
        if (!SOCKET_STATES.has(s.state)) throw precondition(`create duplicate socket not valid in state ${s.state}`);
        const endpoint = backend.parseEndpoint(request.protocolInfo, ident(s));
        s.socketClaimed = true;
        try {
          await backend.attachSocket({ ...ident(s), endpoint, signal: context.signal });
        } catch (e) {
          s.socketClaimed = false;
          throw backendError(e, "attach socket");
        }
        // Cancel or Cleanup may have come while attaching.
        if (session !== s || !SOCKET_STATES.has(s.state)) return {};
        s.endpoint = { value: endpoint };
        s.state = "SocketReady";
        s.socketReady.resolve();
        return {};
      });
    },

    transferSandbox(request) {
      return serial(async () => {
        const s = active(request.sessionId);
        if (TRANSFER_NOOP_STATES.has(s.state)) return {};
        if (s.state === "SourceExported" || s.state === "DestinationPrepared") {
          s.state = "SocketWaiting";
        } else if (s.state !== "SocketReady") {
          throw precondition(`transfer not valid in state ${s.state}`);
        }
        if (s.transfer !== undefined) return {}; // already driven by an earlier call
        const t = request.timeout;
        const ms = t === undefined ? 0 : Number(t.seconds) * 1000 + t.nanos / 1e6;
        const waitMs = ms > 0 ? ms : defaultWait;
        s.transfer = runTransfer(s, waitMs).catch((e: unknown) => onError(e));
        return {};
      });
    },

    finalizeSandbox(request, context) {
      return serial(async () => {
        if (request.action !== FinalizeAction.STOP && request.action !== FinalizeAction.RESUME) {
          throw invalid(
            "finalize action must be FINALIZE_ACTION_STOP or FINALIZE_ACTION_RESUME, " +
              `not ${FinalizeAction[request.action] ?? request.action}`,
          );
        }
        const s = active(request.sessionId);
        if (s.state === "Finalized") return {};
        // A cancelled destination winds down through Cleanup alone.
        if (s.origin === "Destination" && s.state === "Cancelled") return {};
        if (!FINALIZE_STATES.has(s.state)) throw precondition(`finalize not valid in state ${s.state}`);
        const stop = request.action === FinalizeAction.STOP;
        const side = s.origin === "Source" ? "source" : "destination";
        const outcome: FinalizeOutcome = `${side}-${stop ? "stop" : "resume"}`;
        const from = s.state === "TransferCompleted" ? "completed" : s.state === "Failed" ? "failed" : "cancelled";
        let result;
        try {
          result = await backend.finalize({ ...ident(s), outcome, from, signal: context.signal });
        } catch (e) {
          throw backendError(e, "finalize");
        }
        if (outcome === "source-resume" && from !== "completed") {
          const recovered = result?.recovered ?? true;
          publish(s, Phase.RECOVERY_DONE, recovered ? PhaseState.SUCCESS : PhaseState.RECOVERY_FAILED);
        }
        s.state = "Finalized";
        return {};
      });
    },

    // A plain function, not a generator: it subscribes the moment the
    // request arrives, so a TransferSandbox sent right after it on the same
    // connection cannot publish events before the subscriber exists.
    notifications(request: { sessionId: string }, context: HandlerContext): AsyncIterable<NotificationsResponse> {
      const s = active(request.sessionId);
      if (s.notifier.closed) throw precondition("migration session already terminated");
      return s.notifier.subscribe(context.signal);
    },

    cancel(request, context) {
      return serial(async () => {
        const s = active(request.sessionId);
        if (CANCEL_NOOP_STATES.has(s.state)) return {};
        if (s.state === "Finalized") throw precondition("cancel not valid in state Finalized");
        // The destination has no VM yet: nothing to abort.
        if (s.state === "DestinationImported") {
          s.state = "Cancelled";
          return {};
        }
        s.state = "Cancelling";
        s.abort.abort(new TtrpcError("migration cancelled", Code.Canceled));
        try {
          await backend.cancel?.({ ...ident(s), signal: context.signal });
          await s.transfer;
        } catch (e) {
          // The abort did not take hold: Failed, so Cancel can be retried.
          s.state = "Failed";
          throw backendError(e, "cancel");
        }
        s.state = "Cancelled";
        publish(s, Phase.FAILED, PhaseState.CANCELLED);
        return {};
      });
    },

    cleanup(request, context) {
      return serial(async () => {
        if (session === undefined) return {};
        const s = active(request.sessionId);
        const ok = s.state === "Finalized" || (s.origin === "Destination" && s.state === "Cancelled");
        if (!ok) throw precondition(`cleanup not valid for ${s.origin} in state ${s.state}`);
        await end(s, context.signal).catch((e: unknown) => onError(e));
        return {};
      });
    },

    close() {
      return serial(async () => {
        const s = session;
        if (s !== undefined) await end(s, new AbortController().signal).catch((e: unknown) => onError(e));
      });
    },
  };
  return service;
}
