/**
 * The migration orchestrator: drives a source and a destination shim
 * through the whole Migration workflow with the prebuilt client, follows
 * both Notifications streams, and on any failure runs the abort path
 * (Cancel, FinalizeSandbox — source RESUME, destination STOP —, Cleanup)
 * so no shim is left mid-migration.
 *
 * @module
 */
import { randomUUID } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { connect } from "../connect.js";
import type { Client } from "../client.js";
import { Code } from "../code.js";
import { TtrpcError } from "../ttrpc-error.js";
import {
  Phase,
  PhaseState,
  type InitializeOptionsSchema,
} from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_options_pb.js";
import {
  FinalizeAction,
  type NotificationsResponse,
} from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_pb.js";
import {
  createMigrationClient,
  type MigrationClient,
} from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_ttrpc.js";
import { sessionNumber } from "./session-number.js";
import { decodeStatedState } from "./stated-state.js";
import { createEndpointPair, type EndpointTransport } from "./endpoint-descriptor.js";

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

const TERMINAL = new Set([Phase.DONE, Phase.FAILED]);

interface SideRun {
  readonly side: MigrationSide;
  client: MigrationClient;
  conn?: Client;
  started: boolean;
  outcome: SideOutcome;
  terminal: Promise<void>;
  resolveTerminal: () => void;
  stream?: Promise<void>;
  streamAbort: AbortController;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Migrates a sandbox from the source shim to the destination shim. Never
 * throws for a migration that failed: the result says what happened, and
 * both shims have been wound down (source RESUME, destination STOP, Cleanup).
 */
export async function migrate(options: MigrateOptions): Promise<MigrationResult> {
  const t0 = performance.now();
  const at = () => performance.now() - t0;
  const emit = (e: MigrationEvent) => {
    try {
      options.onEvent?.(e);
    } catch {
      // an observer's bug must not break the migration
    }
  };
  const sessionId = options.sessionId ?? randomUUID();
  const callTimeoutMs = options.callTimeoutMs ?? 60_000;
  const timeoutMs = options.timeoutMs ?? 10 * 60_000;
  const notifications: Extract<MigrationEvent, { type: "notification" }>[] = [];
  const abortErrors: string[] = [];
  let firstError: string | undefined;
  let blackoutMs: number | undefined;
  let recovered: boolean | undefined;
  let sawRecovery!: () => void;
  const recoverySeen = new Promise<void>((r) => (sawRecovery = r));
  const failure = new AbortController();
  const fail = (why: string) => {
    firstError ??= why;
    if (!failure.signal.aborted) {
      emit({ type: "abort", reason: why, atMs: at() });
      failure.abort(new Error(why));
    }
  };
  const onUserAbort = () => fail(`aborted: ${message(options.signal?.reason ?? "signal")}`);
  if (options.signal?.aborted) onUserAbort();
  options.signal?.addEventListener("abort", onUserAbort, { once: true });

  const makeSide = (side: MigrationSide): SideRun => {
    let resolveTerminal!: () => void;
    const terminal = new Promise<void>((r) => (resolveTerminal = r));
    return {
      side,
      client: undefined as never,
      started: false,
      outcome: "not-started",
      terminal,
      resolveTerminal,
      streamAbort: new AbortController(),
    };
  };
  const src = makeSide("source");
  const dst = makeSide("destination");

  const call = async <T>(
    s: SideRun,
    step: MigrationStep,
    fn: (c: MigrationClient) => Promise<T>,
    detail?: string,
  ): Promise<T> => {
    const start = at();
    const done = (error?: string) =>
      emit({
        type: "step",
        side: s.side,
        step,
        ...(detail === undefined ? {} : { detail }),
        atMs: start,
        ms: at() - start,
        ...(error === undefined ? {} : { error }),
      });
    try {
      const r = await fn(s.client);
      done();
      return r;
    } catch (e) {
      done(message(e));
      if (e instanceof TtrpcError && (e.code === Code.Unavailable || e.code === Code.Canceled) && s.conn?.closed)
        s.outcome = "unreachable";
      throw e;
    }
  };
  const opts = () => ({ timeoutMs: callTimeoutMs });

  const follow = (s: SideRun) => {
    s.stream = (async () => {
      try {
        for await (const n of s.client.notifications({ sessionId }, { signal: s.streamAbort.signal }))
          onNotification(s, n);
      } catch (e) {
        if (
          !s.streamAbort.signal.aborted &&
          s.outcome !== "done" &&
          s.outcome !== "failed" &&
          s.outcome !== "cancelled"
        ) {
          s.outcome = "unreachable";
          fail(`${s.side} shim: notifications ended: ${message(e)}`);
        }
      } finally {
        if (s.outcome === "not-started") s.outcome = "unreachable";
        s.resolveTerminal();
      }
    })();
  };
  const onNotification = (s: SideRun, r: NotificationsResponse) => {
    const n = r.notification;
    if (n === undefined) return;
    const ev = {
      type: "notification" as const,
      side: s.side,
      phase: n.phase,
      state: n.state,
      messageId: r.messageId,
      atMs: at(),
      ...(n.phaseDetails.case === "blackoutExited"
        ? { blackoutMs: Number(n.phaseDetails.value.blackoutDurationMilliseconds) }
        : {}),
    };
    notifications.push(ev);
    emit(ev);
    if (ev.blackoutMs !== undefined && s.side === "source") blackoutMs = ev.blackoutMs;
    if (n.phase === Phase.RECOVERY_DONE && s.side === "source") {
      recovered = n.state === PhaseState.SUCCESS;
      sawRecovery();
    }
    if (TERMINAL.has(n.phase) && (s.outcome === "not-started" || s.outcome === "unreachable")) {
      s.outcome = n.phase === Phase.DONE ? "done" : n.state === PhaseState.CANCELLED ? "cancelled" : "failed";
      if (n.phase === Phase.FAILED) fail(`${s.side} reported PHASE_FAILED / ${PhaseState[n.state] ?? n.state}`);
      s.resolveTerminal();
    }
  };

  let ok = false;
  try {
    for (const s of [src, dst]) {
      const target = s.side === "source" ? options.source : options.destination;
      if (typeof target === "string") {
        s.conn = await connect(target, { connectTimeoutMs: callTimeoutMs });
        s.client = createMigrationClient(s.conn);
        s.conn.done.then(
          (e) => {
            if (!s.streamAbort.signal.aborted && s.outcome !== "done") {
              s.outcome = s.outcome === "failed" || s.outcome === "cancelled" ? s.outcome : "unreachable";
              fail(`${s.side} shim connection lost: ${e.message}`);
              s.resolveTerminal();
            }
          },
          () => {},
        );
      } else {
        s.client = target;
      }
    }
    // Checked before each step starts: a step begun after a failure would
    // leave a session the abort path does not know of.
    const guard = <T>(step: () => Promise<T>) => {
      if (failure.signal.aborted) throw failure.signal.reason;
      return step();
    };

    // A side counts as started once the call that opens its session is sent:
    // it may have opened it even if the answer never comes.
    const exported = await guard(() => {
      src.started = true;
      return call(src, "PrepareAndExportSandbox", (c) =>
        c.prepareAndExportSandbox({ sessionId, initOptions: options.initOptions }, opts()),
      );
    });
    const config = exported.config;
    if (config === undefined) throw new Error("source returned no config");
    let sandboxId = options.sandboxId;
    if (sandboxId === undefined) {
      try {
        sandboxId = decodeStatedState(config).sandboxId;
      } catch (e) {
        throw new Error(
          `the source's config is not a StatedState the orchestrator can read; pass sandboxId: ${message(e)}`,
        );
      }
    }
    const sid = sandboxId;
    await guard(() => {
      dst.started = true;
      return call(dst, "ImportSandbox", (c) => c.importSandbox({ sessionId, sandboxId: sid, config }, opts()));
    });
    await guard(() =>
      call(dst, "PrepareSandbox", (c) =>
        c.prepareSandbox({ sessionId, initOptions: options.destinationInitOptions ?? options.initOptions }, opts()),
      ),
    );

    const info = options.protocolInfo ?? defaultEndpoints(sessionId, options);
    await guard(() =>
      call(src, "CreateDuplicateSocket", (c) =>
        c.createDuplicateSocket({ sessionId, protocolInfo: info.source }, opts()),
      ),
    );
    await guard(() =>
      call(dst, "CreateDuplicateSocket", (c) =>
        c.createDuplicateSocket({ sessionId, protocolInfo: info.destination }, opts()),
      ),
    );
    follow(src);
    follow(dst);
    const timeout = { seconds: BigInt(Math.floor(timeoutMs / 1000)), nanos: (timeoutMs % 1000) * 1e6 };
    await guard(() => call(src, "TransferSandbox", (c) => c.transferSandbox({ sessionId, timeout }, opts())));
    await guard(() => call(dst, "TransferSandbox", (c) => c.transferSandbox({ sessionId, timeout }, opts())));

    // The outcome comes only through Notifications.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all([src.terminal, dst.terminal]),
      // A failure during the last TransferSandbox has aborted already: no event comes.
      new Promise<void>((resolve) =>
        failure.signal.aborted ? resolve() : failure.signal.addEventListener("abort", () => resolve(), { once: true }),
      ),
      new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          fail(`no outcome within ${timeoutMs} ms`);
          resolve();
        }, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (failure.signal.aborted) throw failure.signal.reason;
    if (src.outcome !== "done" || dst.outcome !== "done")
      throw new Error(`transfer ended with source ${src.outcome}, destination ${dst.outcome}`);

    // Success: start the destination first, so a failure there can still resume the source.
    await call(
      dst,
      "FinalizeSandbox",
      (c) => c.finalizeSandbox({ sessionId, action: FinalizeAction.RESUME }, opts()),
      "RESUME",
    );
    await call(
      src,
      "FinalizeSandbox",
      (c) => c.finalizeSandbox({ sessionId, action: FinalizeAction.STOP }, opts()),
      "STOP",
    );
    for (const s of [src, dst]) {
      s.started = false;
      s.streamAbort.abort();
      await call(s, "Cleanup", (c) => c.cleanup({ sessionId }, opts())).catch((e: unknown) =>
        abortErrors.push(`${s.side} Cleanup: ${message(e)}`),
      );
    }
    ok = true;
  } catch (e) {
    fail(message(e));
    await abortPath();
  } finally {
    options.signal?.removeEventListener("abort", onUserAbort);
    for (const s of [src, dst]) {
      s.streamAbort.abort();
      await within(s.stream, 1000);
      s.conn?.close();
    }
  }

  return {
    ok,
    sessionId,
    ...(ok || firstError === undefined ? {} : { error: firstError }),
    source: src.outcome,
    destination: dst.outcome,
    ...(blackoutMs === undefined ? {} : { blackoutMs }),
    ...(recovered === undefined ? {} : { recovered }),
    notifications,
    abortErrors,
    durationMs: at(),
  };

  async function abortPath(): Promise<void> {
    const attempt = async (
      s: SideRun,
      step: MigrationStep,
      fn: (c: MigrationClient) => Promise<unknown>,
      detail?: string,
    ) => {
      if (s.outcome === "unreachable" && s.conn?.closed) return;
      try {
        await call(s, step, fn, detail);
      } catch (e) {
        abortErrors.push(`${s.side} ${step}${detail === undefined ? "" : ` ${detail}`}: ${message(e)}`);
      }
    };
    const live = [src, dst].filter((s) => s.started);
    // Cancel: stops a transfer still running (a side that already failed needs none).
    await Promise.all(
      live
        .filter((s) => s.outcome !== "failed")
        .map((s) => attempt(s, "Cancel", (c) => c.cancel({ sessionId }, opts()))),
    );
    if (src.started)
      await attempt(
        src,
        "FinalizeSandbox",
        (c) => c.finalizeSandbox({ sessionId, action: FinalizeAction.RESUME }, opts()),
        "RESUME",
      );
    if (dst.started)
      await attempt(
        dst,
        "FinalizeSandbox",
        (c) => c.finalizeSandbox({ sessionId, action: FinalizeAction.STOP }, opts()),
        "STOP",
      );
    // Let the source's RECOVERY_DONE reach us before Cleanup closes the stream.
    if (src.started && src.stream !== undefined && !(src.conn?.closed ?? false)) {
      await within(Promise.race([recoverySeen, src.stream]), 2000);
    }
    for (const s of live) {
      s.streamAbort.abort();
      await attempt(s, "Cleanup", (c) => c.cleanup({ sessionId }, opts()));
    }
  }
}

/** Waits for `p`, at most `ms`; the timer goes either way, so none outlives `migrate`. */
async function within(p: Promise<unknown> | undefined, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

function defaultEndpoints(sessionId: string, options: MigrateOptions): { source: Uint8Array; destination: Uint8Array } {
  const transport = options.transport ?? "unix";
  const address =
    options.transferAddress ??
    (transport === "unix" ? join(tmpdir(), `ttrpc-es-mig-${randomUUID().slice(0, 8)}.sock`) : undefined);
  if (address === undefined)
    throw new TtrpcError("a tcp transfer needs transferAddress HOST:PORT", Code.InvalidArgument);
  return createEndpointPair({ transport, address, sessionNumber: sessionNumber(sessionId) });
}
