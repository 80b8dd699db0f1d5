// Bounds of the property and fuzz runs. CI runs the defaults (the hostile
// folder stays well under 30 s); a longer local run:
//   TTRPC_FUZZ_RUNS=20000 TTRPC_FUZZ_MS=300000 npx vitest run --project unit test/hostile
// A failure prints fast-check's seed and path; replay it with TTRPC_FUZZ_SEED / TTRPC_FUZZ_PATH.
// A run cut off by its time limit passes only if most of its cases ran
// (`assertMost`): a slow machine may trim a run, not empty it.
import { defaultReportMessage, type Parameters, type RunDetails } from "fast-check";

const num = (name: string, dflt: number) => {
  const v = process.env[name];
  return v === undefined || v === "" ? dflt : Number(v);
};

/** fast-check parameters: `runs` tries, at most `ms` of wall time (then it stops; `assertMost` judges the count). */
export function fuzzParams<T>(runs: number, ms: number): Parameters<T> {
  const seed = process.env.TTRPC_FUZZ_SEED;
  const path = process.env.TTRPC_FUZZ_PATH;
  const scale = num("TTRPC_FUZZ_RUNS", 0);
  return {
    numRuns: scale > 0 ? scale : runs,
    interruptAfterTimeLimit: num("TTRPC_FUZZ_MS", ms),
    markInterruptAsFailure: false,
    ...(seed === undefined ? {} : { seed: Number(seed) }),
    ...(path === undefined ? {} : { path }),
    // Shrinking a live-server failure can be misled by the state the first failure left.
    ...(process.env.TTRPC_FUZZ_NOSHRINK ? { endOnFailure: true } : {}),
  };
}

/** The share of the asked cases a run cut off by its time limit must still have run. */
export const MOST = 0.8;

/**
 * What `fc.assert` does with a run's details (throws fast-check's report on
 * a failure), and more: fewer than {@link MOST} of the asked cases, because
 * the time limit cut the run off, is a failure too. Returns the details, for
 * a test that counts what its cases checked.
 */
export function assertMost<T>(details: RunDetails<T>): RunDetails<T> {
  if (details.failed) throw new Error(defaultReportMessage(details));
  const asked = details.runConfiguration.numRuns ?? 100;
  const needed = Math.ceil(asked * MOST);
  if (details.numRuns < needed)
    throw new Error(
      `only ${details.numRuns} of ${asked} fuzz cases ran within ${details.runConfiguration.interruptAfterTimeLimit} ms; at least ${needed} must (TTRPC_FUZZ_MS raises the limit)`,
    );
  return details;
}

/** A test timeout that leaves room for a fuzz run of `ms` (or the TTRPC_FUZZ_MS override) plus setup. */
export function fuzzTimeout(ms: number): number {
  return num("TTRPC_FUZZ_MS", ms) + 20_000;
}
