/**
 * The orchestrator's abort path, run on any failure: on every side that
 * started, Cancel (skipped on a side that already reported FAILED),
 * FinalizeSandbox (source RESUME, destination STOP), Cleanup. Each step is
 * attempted even when an earlier one failed; its error is recorded.
 *
 * @module
 */
import { FinalizeAction } from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_pb.js";
import type { MigrationClient } from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_ttrpc.js";
import type { MigrationStep } from "./orchestrator-types.js";
import { message, type ShimSide } from "./shim-side.js";

/** What the abort path needs of the run it winds down. */
export interface AbortPathHost {
  readonly sessionId: string;
  readonly source: ShimSide;
  readonly destination: ShimSide;
  /** Where each failed step's error goes. */
  readonly abortErrors: string[];
  /** Resolves when the source reported RECOVERY_DONE. */
  readonly recoverySeen: Promise<void>;
  opts(): { timeoutMs: number };
}

export async function runAbortPath(run: AbortPathHost): Promise<void> {
  const { sessionId, source: src, destination: dst } = run;
  const attempt = async (
    s: ShimSide,
    step: MigrationStep,
    fn: (c: MigrationClient) => Promise<unknown>,
    detail?: string,
  ) => {
    if (s.outcome === "unreachable" && s.conn?.closed) return;
    try {
      await s.call(step, fn, detail);
    } catch (e) {
      run.abortErrors.push(`${s.side} ${step}${detail === undefined ? "" : ` ${detail}`}: ${message(e)}`);
    }
  };
  const finalize = (action: FinalizeAction) => (c: MigrationClient) =>
    c.finalizeSandbox({ sessionId, action }, run.opts());
  const live = [src, dst].filter((s) => s.started);
  // Cancel: stops a transfer still running (a side that already failed needs none).
  await Promise.all(
    live
      .filter((s) => s.outcome !== "failed")
      .map((s) => attempt(s, "Cancel", (c) => c.cancel({ sessionId }, run.opts()))),
  );
  if (src.started) await attempt(src, "FinalizeSandbox", finalize(FinalizeAction.RESUME), "RESUME");
  if (dst.started) await attempt(dst, "FinalizeSandbox", finalize(FinalizeAction.STOP), "STOP");
  // Let the source's RECOVERY_DONE reach us before Cleanup closes the stream.
  if (src.started && src.stream !== undefined && !(src.conn?.closed ?? false))
    await within(Promise.race([run.recoverySeen, src.stream]), 2000);
  for (const s of live) {
    s.streamAbort.abort();
    await attempt(s, "Cleanup", (c) => c.cleanup({ sessionId }, run.opts()));
  }
}

/** Waits for `p`, at most `ms`; the timer goes either way, so none outlives `migrate`. */
export async function within(p: Promise<unknown> | undefined, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}
