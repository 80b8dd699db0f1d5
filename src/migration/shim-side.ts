/**
 * One of the two shims a migration drives, as the orchestrator sees it: its
 * client (and connection, when it dialed one), whether its session was
 * started, how it ended, and its Notifications stream.
 *
 * @module
 */
import type { Client } from "../client.js";
import { Code } from "../code.js";
import { connect } from "../connect.js";
import { TtrpcError } from "../ttrpc-error.js";
import { Phase, PhaseState } from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_options_pb.js";
import type { NotificationsResponse } from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_pb.js";
import {
  createMigrationClient,
  type MigrationClient,
} from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_ttrpc.js";
import type { MigrationEvent, MigrationSide, MigrationStep, SideOutcome } from "./orchestrator-types.js";

export type NotificationEvent = Extract<MigrationEvent, { type: "notification" }>;

/** What a side reports to the run that drives it. */
export interface SideHost {
  /** Ms since the run started. */
  at(): number;
  emit(event: MigrationEvent): void;
  /** The run failed: the first reason wins, and the abort path follows. */
  fail(why: string): void;
  /** A notification arrived (already emitted). */
  notified(side: ShimSide, event: NotificationEvent, phase: Phase, state: PhaseState): void;
}

const TERMINAL = new Set([Phase.DONE, Phase.FAILED]);

export function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class ShimSide {
  client: MigrationClient = undefined as never;
  conn: Client | undefined;
  /** The call that opens its session was sent: the abort path owes it a wind-down. */
  started = false;
  outcome: SideOutcome = "not-started";
  /** Resolves when the side reached DONE or FAILED, or cannot any more. */
  readonly terminal: Promise<void>;
  resolveTerminal: () => void = () => {};
  stream: Promise<void> | undefined;
  readonly streamAbort = new AbortController();
  readonly #host: SideHost;

  constructor(
    readonly side: MigrationSide,
    host: SideHost,
  ) {
    this.#host = host;
    this.terminal = new Promise<void>((r) => (this.resolveTerminal = r));
  }

  /** The side's client: the given one, or one dialed to the address (its loss fails the run). */
  async connect(target: MigrationClient | string, timeoutMs: number): Promise<void> {
    if (typeof target !== "string") {
      this.client = target;
      return;
    }
    const conn = await connect(target, { connectTimeoutMs: timeoutMs });
    this.conn = conn;
    this.client = createMigrationClient(conn);
    conn.done.then(
      (e) => {
        if (this.streamAbort.signal.aborted || this.outcome === "done") return;
        this.outcome = this.outcome === "failed" || this.outcome === "cancelled" ? this.outcome : "unreachable";
        this.#host.fail(`${this.side} shim connection lost: ${e.message}`);
        this.resolveTerminal();
      },
      () => {},
    );
  }

  /** One RPC of the workflow, reported as a step event; a shim gone away makes the side unreachable. */
  async call<T>(step: MigrationStep, fn: (c: MigrationClient) => Promise<T>, detail?: string): Promise<T> {
    const host = this.#host;
    const start = host.at();
    const done = (error?: string) =>
      host.emit({
        type: "step",
        side: this.side,
        step,
        ...(detail === undefined ? {} : { detail }),
        atMs: start,
        ms: host.at() - start,
        ...(error === undefined ? {} : { error }),
      });
    try {
      const r = await fn(this.client);
      done();
      return r;
    } catch (e) {
      done(message(e));
      if (e instanceof TtrpcError && (e.code === Code.Unavailable || e.code === Code.Canceled) && this.conn?.closed)
        this.outcome = "unreachable";
      throw e;
    }
  }

  /** Follows the side's Notifications until it ends or {@link streamAbort} fires. */
  follow(sessionId: string): void {
    this.stream = (async () => {
      try {
        for await (const n of this.client.notifications({ sessionId }, { signal: this.streamAbort.signal }))
          this.#notification(n);
      } catch (e) {
        const ended = this.outcome === "done" || this.outcome === "failed" || this.outcome === "cancelled";
        if (!this.streamAbort.signal.aborted && !ended) {
          this.outcome = "unreachable";
          this.#host.fail(`${this.side} shim: notifications ended: ${message(e)}`);
        }
      } finally {
        if (this.outcome === "not-started") this.outcome = "unreachable";
        this.resolveTerminal();
      }
    })();
  }

  #notification(r: NotificationsResponse): void {
    const n = r.notification;
    if (n === undefined) return;
    const event: NotificationEvent = {
      type: "notification",
      side: this.side,
      phase: n.phase,
      state: n.state,
      messageId: r.messageId,
      atMs: this.#host.at(),
      ...(n.phaseDetails.case === "blackoutExited"
        ? { blackoutMs: Number(n.phaseDetails.value.blackoutDurationMilliseconds) }
        : {}),
    };
    this.#host.notified(this, event, n.phase, n.state);
    if (TERMINAL.has(n.phase) && (this.outcome === "not-started" || this.outcome === "unreachable")) {
      this.outcome = n.phase === Phase.DONE ? "done" : n.state === PhaseState.CANCELLED ? "cancelled" : "failed";
      if (n.phase === Phase.FAILED)
        this.#host.fail(`${this.side} reported PHASE_FAILED / ${PhaseState[n.state] ?? n.state}`);
      this.resolveTerminal();
    }
  }
}
