// TransferSandbox's background work: wait for the duplicated socket, hand
// the transfer to the backend, and turn its end into the session's state and
// notifications, as hcsshim's Transfer goroutine does.
import { Phase, PhaseState } from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_options_pb.js";
import type { BlackoutReport, MigrationBackend, ProgressPhase, TransferReporter, TransferResult } from "./backend.js";
import { precondition } from "./migration-errors.js";
import type { MigrationSession } from "./migration-session.js";

/** What a transfer needs of the server around it. */
export interface TransferHost<E> {
  readonly backend: MigrationBackend<E>;
  now(): number;
  /** Whether the session still owns the server (not cleaned up). */
  owns(session: MigrationSession<E>): boolean;
  /** The shim's own failure: Failed, and PHASE_FAILED to existing subscribers. */
  failTransfer(session: MigrationSession<E>, error: unknown): void;
}

export class TransferRun<E> {
  private settled = false;

  constructor(
    private readonly host: TransferHost<E>,
    private readonly s: MigrationSession<E>,
    private readonly waitMs: number,
  ) {}

  async run(): Promise<void> {
    const outcome = await this.socket();
    const s = this.s;
    if (outcome === "aborted" || !this.host.owns(s)) return;
    if (outcome === "timeout") {
      this.host.failTransfer(s, precondition(`timed out waiting for socket ready after ${this.waitMs} ms`));
      return;
    }
    if (s.state !== "SocketReady" || s.endpoint === undefined) {
      if (s.state === "Failed") {
        this.host.failTransfer(s, precondition("migration session failed before transfer could start"));
      }
      return;
    }
    s.state = "Transferring";
    this.finish(await this.transfer(s.endpoint.value));
  }

  // Resolves when CreateDuplicateSocket settled, the wait timed out, or
  // Cancel/Cleanup aborted the session.
  private socket(): Promise<"settled" | "timeout" | "aborted"> {
    const s = this.s;
    return new Promise((resolve) => {
      if (s.abort.signal.aborted) return resolve("aborted");
      const timer = setTimeout(() => resolve("timeout"), Math.min(this.waitMs, 2 ** 31 - 1));
      const done = (how: "settled" | "aborted") => {
        clearTimeout(timer);
        resolve(how);
      };
      s.abort.signal.addEventListener("abort", () => done("aborted"), { once: true });
      void s.socketSettled.promise.then(() => done("settled"));
    });
  }

  private async transfer(endpoint: E): Promise<TransferResult | { thrown: unknown }> {
    const s = this.s;
    try {
      return await this.host.backend.transfer({
        ...s.ident(),
        endpoint,
        options: s.options,
        state: s.stated!,
        signal: s.abort.signal,
        report: this.reporter(),
      });
    } catch (e) {
      return { thrown: e };
    } finally {
      this.settled = true;
    }
  }

  private reporter(): TransferReporter {
    const s = this.s;
    return {
      phase: (phase: ProgressPhase) => {
        if (this.settled) return;
        if (phase === Phase.BLACKOUT_STARTED) s.blackoutStartedAt = this.host.now();
        s.report(phase);
      },
      blackoutExited: (r: Partial<BlackoutReport> = {}) => {
        if (this.settled) return;
        const stoppedAtMs = r.stoppedAtMs ?? this.host.now();
        const start = s.blackoutStartedAt;
        const durationMs = r.durationMs ?? (start === undefined ? 0 : stoppedAtMs - start);
        s.report(Phase.BLACKOUT_EXITED, undefined, { durationMs, stoppedAtMs });
      },
    };
  }

  // Cancel owns the outcome of a session it caught mid-transfer.
  private finish(result: TransferResult | { thrown: unknown }): void {
    const s = this.s;
    if (!this.host.owns(s) || s.state !== "Transferring") return;
    if ("thrown" in result) {
      this.host.failTransfer(s, result.thrown);
    } else if (result.ok) {
      s.state = "TransferCompleted";
      s.report(Phase.DONE, result.state ?? PhaseState.SUCCESS);
    } else {
      // HCS reported the failure: every subscriber, present or future, sees it.
      s.state = "Failed";
      s.report(Phase.FAILED, result.state);
    }
  }
}
