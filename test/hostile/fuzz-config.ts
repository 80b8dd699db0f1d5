// Bounds of the property and fuzz runs. CI runs the defaults (the hostile
// folder stays well under 30 s); a longer local run:
//   TTRPC_FUZZ_RUNS=20000 TTRPC_FUZZ_MS=300000 npx vitest run --project unit test/hostile
// A failure prints fast-check's seed and path; replay it with TTRPC_FUZZ_SEED / TTRPC_FUZZ_PATH.
import type { Parameters } from "fast-check";

const num = (name: string, dflt: number) => {
  const v = process.env[name];
  return v === undefined || v === "" ? dflt : Number(v);
};

/** fast-check parameters: `runs` tries, at most `ms` of wall time (then it stops, not fails). */
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

/** A test timeout that leaves room for a fuzz run of `ms` (or the TTRPC_FUZZ_MS override) plus setup. */
export function fuzzTimeout(ms: number): number {
  return num("TTRPC_FUZZ_MS", ms) + 20_000;
}
