/**
 * The source side of a QEMU live migration, driven over QMP: `migrate`, then
 * the MIGRATION / MIGRATION_PASS / STOP events mapped onto the service's
 * phases, the pass limit (force the switchover, or cancel when the projected
 * blackout is over the threshold), and `migrate_cancel` on Cancel.
 *
 * @module
 */
import { Phase, PhaseState } from "../../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_options_pb.js";
import type { TransferReporter, TransferResult } from "../backend.js";
import { EventQueue } from "./event-queue.js";
import type { QemuProcess } from "./qemu-vm.js";
import { QmpCommandError } from "./qmp-client.js";

/** QEMU's `downtime-limit` ceiling (2000 s): raising it to this makes the next pass the last. */
export const FORCE_DOWNTIME_LIMIT_MS = 2_000_000;
// A destination QEMU that is not listening yet fails `migrate` at once; retried this often.
const CONNECT_ATTEMPTS = 100;
const CONNECT_RETRY_MS = 100;

/** What the source learned about a finished migration (query-migrate). */
export interface QemuMigrationStats {
  readonly status: string;
  /** `total-time`, ms. */
  readonly totalMs: number;
  /** `downtime`: the blackout QEMU measured, ms. */
  readonly downtimeMs: number;
  /** `ram.transferred`, bytes. */
  readonly transferredBytes: number;
  /** `ram.mbps`, as QEMU reports it (megabits per second). */
  readonly mbps: number;
  /** Brownout passes (`ram.dirty-sync-count`). */
  readonly passes: number;
  /** True when the pass limit raised `downtime-limit` to force the switchover. */
  readonly forcedSwitchover: boolean;
}

/** The source's limits, from the migration's options. */
export interface SourceLimits {
  /** MaximumNumberOfBrownoutTransferPasses. */
  readonly maxPasses?: number;
  /** BlackoutTimeThresholdForCancellingMigration, when CancelIfBlackoutThresholdExceeds. */
  readonly cancelThresholdMs?: number;
}

/** A source transfer's progress, for observers (the demo, tests). */
export type SourceProgress =
  | { readonly type: "status"; readonly status: string }
  | { readonly type: "pass"; readonly pass: number; readonly expectedDowntimeMs?: number }
  | { readonly type: "forced"; readonly pass: number }
  | { readonly type: "threshold-cancel"; readonly pass: number; readonly expectedDowntimeMs: number }
  | { readonly type: "done"; readonly stats: QemuMigrationStats };

export interface SourceTransferOptions {
  readonly vm: QemuProcess;
  /** The URI for `migrate` (fd mode: the socket is already QEMU's). */
  readonly uri: string;
  /** Retry `migrate` while it fails before reaching `active` (URI mode: the destination may not listen yet). */
  readonly retryConnect: boolean;
  readonly limits: SourceLimits;
  readonly report: TransferReporter;
  readonly signal: AbortSignal;
  readonly observe: (p: SourceProgress) => void;
}

interface QueryMigrate {
  status?: string;
  "total-time"?: number;
  downtime?: number;
  "expected-downtime"?: number;
  ram?: { transferred?: number; mbps?: number; "dirty-sync-count"?: number };
}

/** Runs the source side; resolves when QEMU says completed, failed or cancelled, or the VM is gone. */
export async function runSourceTransfer(o: SourceTransferOptions): Promise<TransferResult> {
  return new SourceTransfer(o).run();
}

class SourceTransfer {
  readonly #o: SourceTransferOptions;
  #active = false;
  #attempts = 0;
  #forced = false;
  #cancelling = false;
  #thresholdCancel: string | undefined;

  constructor(o: SourceTransferOptions) {
    this.#o = o;
  }

  async run(): Promise<TransferResult> {
    const qmp = this.#o.vm.qmp;
    const queue = new EventQueue(qmp, ["MIGRATION", "MIGRATION_PASS", "STOP"], this.#o.signal);
    try {
      await this.#migrate();
      for (;;) {
        const item = await queue.next();
        if (item.kind === "closed") return this.#vmGone();
        if (item.kind === "aborted") {
          await this.#cancel();
          continue;
        }
        const { event, data } = item.event;
        if (event === "STOP") this.#o.report.phase(Phase.BLACKOUT_STARTED);
        else if (event === "MIGRATION_PASS") await this.#onPass(Number(data.pass));
        else {
          const result = await this.#onStatus(String(data.status));
          if (result !== undefined) return result;
        }
      }
    } catch (e) {
      if (qmp.isClosed) return this.#vmGone();
      throw e;
    } finally {
      queue.close();
    }
  }

  #migrate(): Promise<unknown> {
    this.#attempts++;
    return this.#o.vm.qmp.execute("migrate", { uri: this.#o.uri });
  }

  async #onStatus(status: string): Promise<TransferResult | undefined> {
    this.#o.observe({ type: "status", status });
    switch (status) {
      case "active":
        if (!this.#active) {
          this.#active = true;
          this.#o.report.phase(Phase.SETUP_DONE);
          this.#o.report.phase(Phase.TRANSFER_IN_PROGRESS);
        }
        return undefined;
      case "completed":
        return this.#completed();
      case "failed":
        return this.#failed();
      case "cancelled":
        return {
          ok: false,
          state: PhaseState.CANCELLED,
          message: this.#thresholdCancel ?? "migration cancelled; the source VM runs on",
        };
      default:
        return undefined;
    }
  }

  async #completed(): Promise<TransferResult> {
    this.#o.report.phase(Phase.OFFLINE_DONE);
    const stats = await this.#finalStats();
    this.#o.report.blackoutExited({ durationMs: stats.downtimeMs });
    this.#o.observe({ type: "done", stats });
    return { ok: true };
  }

  async #failed(): Promise<TransferResult | undefined> {
    if (!this.#active && !this.#cancelling && this.#o.retryConnect && this.#attempts < CONNECT_ATTEMPTS) {
      await new Promise((r) => setTimeout(r, CONNECT_RETRY_MS));
      if (!this.#o.signal.aborted) {
        await this.#migrate();
        return undefined;
      }
    }
    const q = await this.#o.vm.qmp
      .execute<QueryMigrate & { "error-desc"?: string }>("query-migrate")
      .catch(() => undefined);
    const why = q?.["error-desc"] || this.#o.vm.stderrTail() || "no reason given";
    if (this.#o.signal.aborted) return { ok: false, state: PhaseState.CANCELLED, message: `cancelled: ${why}` };
    return { ok: false, state: PhaseState.SOURCE_FAILED, message: `QEMU migration failed: ${why}` };
  }

  /** `completed` shows before `total-time` and `downtime` are filled in: ask until they are. */
  async #finalStats(): Promise<QemuMigrationStats> {
    let q: QueryMigrate = {};
    for (let i = 0; i < 50; i++) {
      q = await this.#o.vm.qmp.execute<QueryMigrate>("query-migrate");
      if ((q["total-time"] ?? 0) > 0 && q.downtime !== undefined) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    return {
      status: q.status ?? "completed",
      totalMs: q["total-time"] ?? 0,
      downtimeMs: q.downtime ?? 0,
      transferredBytes: q.ram?.transferred ?? 0,
      mbps: q.ram?.mbps ?? 0,
      passes: q.ram?.["dirty-sync-count"] ?? 0,
      forcedSwitchover: this.#forced,
    };
  }

  async #onPass(pass: number): Promise<void> {
    const { maxPasses, cancelThresholdMs } = this.#o.limits;
    const over = maxPasses !== undefined && pass > maxPasses && !this.#forced && !this.#cancelling;
    if (!over) {
      this.#o.observe({ type: "pass", pass });
      return;
    }
    const q = await this.#o.vm.qmp.execute<QueryMigrate>("query-migrate");
    const expected = q["expected-downtime"] ?? 0;
    this.#o.observe({ type: "pass", pass, expectedDowntimeMs: expected });
    if (cancelThresholdMs !== undefined && expected > cancelThresholdMs) {
      this.#thresholdCancel =
        `projected blackout ${expected} ms is over the ${cancelThresholdMs} ms threshold ` +
        `after ${maxPasses} passes`;
      this.#o.observe({ type: "threshold-cancel", pass, expectedDowntimeMs: expected });
      await this.#cancel();
      return;
    }
    this.#forced = true;
    this.#o.observe({ type: "forced", pass });
    await this.#o.vm.qmp.execute("migrate-set-parameters", { "downtime-limit": FORCE_DOWNTIME_LIMIT_MS });
  }

  async #cancel(): Promise<void> {
    if (this.#cancelling) return;
    this.#cancelling = true;
    try {
      await this.#o.vm.qmp.execute("migrate_cancel");
    } catch (e) {
      if (!(e instanceof QmpCommandError)) throw e;
    }
  }

  #vmGone(): TransferResult {
    const exit = this.#o.vm.exit;
    return {
      ok: false,
      state: this.#o.signal.aborted ? PhaseState.CANCELLED : PhaseState.SOURCE_FAILED,
      message: `the source QEMU is gone (exit ${exit?.code ?? exit?.signal ?? "unknown"}): ${this.#o.vm.stderrTail()}`,
    };
  }
}
