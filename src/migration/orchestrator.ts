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
import type { Any } from "@bufbuild/protobuf/wkt";
import { Code } from "../code.js";
import { TtrpcError } from "../ttrpc-error.js";
import { Phase, PhaseState } from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_options_pb.js";
import { FinalizeAction } from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_pb.js";
import { runAbortPath, within } from "./abort-path.js";
import { createEndpointPair } from "./endpoint-descriptor.js";
import type { MigrateOptions, MigrationEvent, MigrationResult } from "./orchestrator-types.js";
import { sessionNumber } from "./session-number.js";
import { decodeSandboxConfig } from "./save-payload.js";
import { message, type NotificationEvent, ShimSide, type SideHost } from "./shim-side.js";

// The CLI reads the events from here.
export type { MigrationEvent } from "./orchestrator-types.js";

/**
 * Migrates a sandbox from the source shim to the destination shim. Never
 * throws for a migration that failed: the result says what happened, and
 * both shims have been wound down (source RESUME, destination STOP, Cleanup).
 *
 * @example
 * ```ts
 * import { MemoryTransport, migrate } from "ttrpc-es/migration";
 *
 * const result = await migrate({
 *   source: "unix:/run/source.sock",
 *   destination: "unix:/run/destination.sock",
 *   initOptions: { memoryTransport: MemoryTransport.TCP },
 *   signal: AbortSignal.timeout(60_000),
 * });
 * if (!result.ok) console.error(result.error, "source recovered:", result.recovered);
 * ```
 */
export function migrate(options: MigrateOptions): Promise<MigrationResult> {
  return new MigrationRun(options).run();
}

/** One {@link migrate}: the workflow's steps, what it saw, and its first failure. */
class MigrationRun implements SideHost {
  readonly options: MigrateOptions;
  readonly sessionId: string;
  readonly source: ShimSide;
  readonly destination: ShimSide;
  readonly notifications: NotificationEvent[] = [];
  /** Errors of the abort path (each step is attempted anyway). */
  readonly abortErrors: string[] = [];
  /** Resolves when the source reported RECOVERY_DONE. */
  readonly recoverySeen: Promise<void>;
  readonly #t0 = performance.now();
  readonly #callTimeoutMs: number;
  readonly #failure = new AbortController();
  #firstError: string | undefined;
  #blackoutMs: number | undefined;
  #recovered: boolean | undefined;
  #sawRecovery: () => void = () => {};
  readonly #onUserAbort = () => this.fail(`aborted: ${message(this.options.signal?.reason ?? "signal")}`);

  constructor(options: MigrateOptions) {
    this.options = options;
    this.sessionId = options.sessionId ?? randomUUID();
    this.#callTimeoutMs = options.callTimeoutMs ?? 60_000;
    this.recoverySeen = new Promise<void>((r) => (this.#sawRecovery = r));
    this.source = new ShimSide("source", this);
    this.destination = new ShimSide("destination", this);
  }

  at(): number {
    return performance.now() - this.#t0;
  }

  emit(e: MigrationEvent): void {
    try {
      this.options.onEvent?.(e);
    } catch {
      // an observer's bug must not break the migration
    }
  }

  fail(why: string): void {
    this.#firstError ??= why;
    if (this.#failure.signal.aborted) return;
    this.emit({ type: "abort", reason: why, atMs: this.at() });
    this.#failure.abort(new Error(why));
  }

  notified(side: ShimSide, event: NotificationEvent, phase: Phase, state: PhaseState): void {
    this.notifications.push(event);
    this.emit(event);
    if (side.side !== "source") return;
    if (event.blackoutMs !== undefined) this.#blackoutMs = event.blackoutMs;
    if (phase === Phase.RECOVERY_DONE) {
      this.#recovered = state === PhaseState.SUCCESS;
      this.#sawRecovery();
    }
  }

  /** Options of each unary RPC. */
  opts(): { timeoutMs: number } {
    return { timeoutMs: this.#callTimeoutMs };
  }

  async run(): Promise<MigrationResult> {
    const signal = this.options.signal;
    if (signal?.aborted) this.#onUserAbort();
    signal?.addEventListener("abort", this.#onUserAbort, { once: true });
    let ok = false;
    try {
      await this.source.connect(this.options.source, this.#callTimeoutMs);
      await this.destination.connect(this.options.destination, this.#callTimeoutMs);
      await this.#prepare();
      await this.#transfer();
      await this.#finalize();
      ok = true;
    } catch (e) {
      this.fail(message(e));
      await runAbortPath(this);
    } finally {
      signal?.removeEventListener("abort", this.#onUserAbort);
      for (const s of [this.source, this.destination]) {
        s.streamAbort.abort();
        await within(s.stream, 1000);
        s.conn?.close();
      }
    }
    return this.#result(ok);
  }

  /**
   * Checked before each step starts: a step begun after a failure would
   * leave a session the abort path does not know of.
   */
  #guard<T>(step: () => Promise<T>): Promise<T> {
    if (this.#failure.signal.aborted) throw this.#failure.signal.reason;
    return step();
  }

  /** Export on the source, import and prepare on the destination, each side's memory endpoint. */
  async #prepare(): Promise<void> {
    const { sessionId, options, source: src, destination: dst } = this;
    // A side counts as started once the call that opens its session is sent:
    // it may have opened it even if the answer never comes.
    const exported = await this.#guard(() => {
      src.started = true;
      const initOptions = options.initOptions;
      return src.call("PrepareAndExportSandbox", (c) =>
        c.prepareAndExportSandbox({ sessionId, initOptions }, this.opts()),
      );
    });
    const config = exported.config;
    if (config === undefined) throw new Error("source returned no config");
    const sandboxId = options.sandboxId ?? sandboxIdOf(config);
    await this.#guard(() => {
      dst.started = true;
      return dst.call("ImportSandbox", (c) => c.importSandbox({ sessionId, sandboxId, config }, this.opts()));
    });
    const initOptions = options.destinationInitOptions ?? options.initOptions;
    await this.#guard(() =>
      dst.call("PrepareSandbox", (c) => c.prepareSandbox({ sessionId, initOptions }, this.opts())),
    );
    const info = options.protocolInfo ?? defaultEndpoints(sessionId, options);
    for (const [s, protocolInfo] of [
      [src, info.source],
      [dst, info.destination],
    ] as const)
      await this.#guard(() =>
        s.call("CreateDuplicateSocket", (c) => c.createDuplicateSocket({ sessionId, protocolInfo }, this.opts())),
      );
  }

  /** TransferSandbox on both sides; the outcome comes only through Notifications. */
  async #transfer(): Promise<void> {
    const { sessionId, source: src, destination: dst } = this;
    src.follow(sessionId);
    dst.follow(sessionId);
    const timeoutMs = this.options.timeoutMs ?? 10 * 60_000;
    const timeout = { seconds: BigInt(Math.floor(timeoutMs / 1000)), nanos: (timeoutMs % 1000) * 1e6 };
    for (const s of [src, dst])
      await this.#guard(() => s.call("TransferSandbox", (c) => c.transferSandbox({ sessionId, timeout }, this.opts())));
    let timer: NodeJS.Timeout | undefined;
    const failed = this.#failure.signal;
    await Promise.race([
      Promise.all([src.terminal, dst.terminal]),
      // A failure during the last TransferSandbox has aborted already: no event comes.
      new Promise<void>((resolve) =>
        failed.aborted ? resolve() : failed.addEventListener("abort", () => resolve(), { once: true }),
      ),
      new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          this.fail(`no outcome within ${timeoutMs} ms`);
          resolve();
        }, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (failed.aborted) throw failed.reason;
    if (src.outcome !== "done" || dst.outcome !== "done")
      throw new Error(`transfer ended with source ${src.outcome}, destination ${dst.outcome}`);
  }

  /** Success: start the destination first, so a failure there can still resume the source; then Cleanup. */
  async #finalize(): Promise<void> {
    const { sessionId, source: src, destination: dst } = this;
    const finalize = (action: FinalizeAction) => (c: ShimSide["client"]) =>
      c.finalizeSandbox({ sessionId, action }, this.opts());
    await dst.call("FinalizeSandbox", finalize(FinalizeAction.RESUME), "RESUME");
    await src.call("FinalizeSandbox", finalize(FinalizeAction.STOP), "STOP");
    for (const s of [src, dst]) {
      s.started = false;
      s.streamAbort.abort();
      await s
        .call("Cleanup", (c) => c.cleanup({ sessionId }, this.opts()))
        .catch((e: unknown) => this.abortErrors.push(`${s.side} Cleanup: ${message(e)}`));
    }
  }

  #result(ok: boolean): MigrationResult {
    const firstError = this.#firstError;
    return {
      ok,
      sessionId: this.sessionId,
      ...(ok || firstError === undefined ? {} : { error: firstError }),
      source: this.source.outcome,
      destination: this.destination.outcome,
      ...(this.#blackoutMs === undefined ? {} : { blackoutMs: this.#blackoutMs }),
      ...(this.#recovered === undefined ? {} : { recovered: this.#recovered }),
      notifications: this.notifications,
      abortErrors: this.abortErrors,
      durationMs: this.at(),
    };
  }
}

/** The sandbox id in the source's exported config. */
function sandboxIdOf(config: Any): string {
  try {
    return decodeSandboxConfig(config).sandboxId;
  } catch (e) {
    throw new Error(
      `the source's config is not a StatedState the orchestrator can read; pass sandboxId: ${message(e)}`,
    );
  }
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
