// The reference Migration service's RPC handlers: each turns its request into
// a call of the state machine (`MigrationController`), one unary call at a
// time as hcsshim holds its controller's mutex.
import type { HandlerContext } from "../service-impl.js";
import type { NotificationsResponse } from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_pb.js";
import type { MigrationServer } from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_ttrpc.js";
import type { MigrationBackend } from "./backend.js";
import { initializeOptionsFromProto } from "./init-options.js";
import { MigrationController } from "./migration-controller.js";
import { wallClockMs } from "./notifier.js";
import type { MigrationState } from "./session-state.js";
import type { HcsMigrationOrigin } from "./stated-state.js";
import type { MigrationTaskRules } from "./task-rules.js";

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
  /**
   * For a shim that also serves Task: ImportSandbox lists the imported
   * containers as pending and PrepareSandbox waits until Task Create
   * re-created each ({@link MigrationService.tasks}). Default false: a
   * Migration-only shim has no Task Create to wait for.
   */
  trackContainers?: boolean;
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
  /** The rules a Task service in the same shim applies (D9). */
  readonly tasks: MigrationTaskRules;
  /**
   * Ends any session the way Cleanup would, whatever its state (for shutting
   * a shim down): aborts the transfer, calls the backend's cleanup, closes
   * the Notifications streams.
   */
  close(): Promise<void>;
}

const IDLE_INFO: MigrationSessionInfo = {
  state: "Idle",
  sessionId: "",
  origin: undefined,
  socketAttached: false,
  subscribers: 0,
};

type Request<K extends keyof MigrationServer> = Parameters<MigrationServer[K]>[0];

class MigrationHandlers<E> implements MigrationService {
  // The unary RPCs run one at a time; the transfer and Notifications run outside.
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly controller: MigrationController<E>,
    private readonly defaultWaitMs: number,
  ) {}

  private serial<T>(fn: () => Promise<T> | T): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  get session(): MigrationSessionInfo {
    const s = this.controller.current;
    if (s === undefined) return IDLE_INFO;
    const { state, sessionId, origin } = s;
    return { state, sessionId, origin, socketAttached: s.endpoint !== undefined, subscribers: s.subscribers };
  }

  get tasks(): MigrationTaskRules {
    return this.controller;
  }

  prepareAndExportSandbox(request: Request<"prepareAndExportSandbox">, context: HandlerContext) {
    return this.serial(async () => {
      const options = initializeOptionsFromProto(request.initOptions, "Source");
      return { config: await this.controller.prepareSource(request.sessionId, options, context.signal) };
    });
  }

  importSandbox(request: Request<"importSandbox">, context: HandlerContext) {
    return this.serial(async () => {
      await this.controller.importState(request, context.signal);
      return {};
    });
  }

  prepareSandbox(request: Request<"prepareSandbox">, context: HandlerContext) {
    return this.serial(async () => {
      const options = initializeOptionsFromProto(request.initOptions, "Destination");
      await this.controller.prepareDestination(request.sessionId, options, context.signal);
      return {};
    });
  }

  createDuplicateSocket(request: Request<"createDuplicateSocket">, context: HandlerContext) {
    return this.serial(async () => {
      await this.controller.registerSocket(request.sessionId, request.protocolInfo, context.signal);
      return {};
    });
  }

  transferSandbox(request: Request<"transferSandbox">) {
    return this.serial(() => {
      const t = request.timeout;
      const ms = t === undefined ? 0 : Number(t.seconds) * 1000 + t.nanos / 1e6;
      this.controller.transfer(request.sessionId, ms > 0 ? ms : this.defaultWaitMs);
      return {};
    });
  }

  finalizeSandbox(request: Request<"finalizeSandbox">, context: HandlerContext) {
    return this.serial(async () => {
      await this.controller.finalize(request.sessionId, request.action, context.signal);
      return {};
    });
  }

  // Not serialized, and no generator: it subscribes the moment the request
  // arrives, so a TransferSandbox sent right after it on the same connection
  // cannot publish before the subscriber exists.
  notifications(request: { sessionId: string }, context: HandlerContext): AsyncIterable<NotificationsResponse> {
    return this.controller.subscribe(request.sessionId, context.signal);
  }

  cancel(request: Request<"cancel">, context: HandlerContext) {
    return this.serial(async () => {
      await this.controller.cancel(request.sessionId, context.signal);
      return {};
    });
  }

  cleanup(request: Request<"cleanup">, context: HandlerContext) {
    return this.serial(async () => {
      await this.controller.cleanup(request.sessionId, context.signal);
      return {};
    });
  }

  close(): Promise<void> {
    return this.serial(() => this.controller.close());
  }
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
  const bufferSize = options.notificationBufferSize;
  const controller = new MigrationController(backend, {
    now,
    notifier: bufferSize === undefined ? { now } : { now, bufferSize },
    onError: options.onError ?? (() => {}),
    trackContainers: options.trackContainers ?? false,
  });
  return new MigrationHandlers(controller, options.defaultSocketWaitMs ?? DEFAULT_SOCKET_WAIT_MS);
}
