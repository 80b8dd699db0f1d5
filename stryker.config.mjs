// @ts-check
// `npm run mutation`: StrykerJS mutates the runtime (src/*.ts), the migration
// service, orchestrator and backends (src/migration/**) and the NRI plugin
// side (src/nri/**), runs vitest.mutation.config.ts against each mutant, and
// test/mutation/scores.mjs prints the score per folder and fails below its
// threshold. `npm run mutation:changed` mutates only the lines a change
// touched (test/mutation/changed-lines.mjs), as .ci/run does.
// Arguments after `--` reach Stryker: `npm run mutation -- --mutate src/frame.ts
// --concurrency 1`. See docs/testing.md, "Mutation testing".

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
const config = {
  testRunner: "vitest",
  // Forks, not Stryker's default threads: the shim's reaper test waits for
  // SIGCHLD, which a worker thread never receives.
  vitest: { configFile: "vitest.mutation.config.ts", related: true, pool: "forks" },
  checkers: ["typescript"],
  // src/ and what it imports only: with tsconfig.json (tests, bench, gen,
  // the generator) the checker re-checked every test a mutant's file reaches,
  // and held the test runners waiting.
  tsconfigFile: "tsconfig.build.json",
  typescriptChecker: { prioritizePerformanceOverAccuracy: true },
  mutate: [
    "src/*.ts",
    "src/migration/**/*.ts",
    "src/nri/**/*.ts",
    // Re-exports only.
    "!src/index.ts",
    "!src/migration/index.ts",
    "!src/migration/*/index.ts",
    "!src/nri/index.ts",
  ],
  coverageAnalysis: "perTest",
  // Mutants of module-level values (a constant table, a default) run every
  // test each: three quarters of a run's time for a quarter of its mutants.
  // They are left out (reported as Ignored); docs/testing.md says so.
  ignoreStatic: true,
  // Not copied into Stryker's sandbox: builds, and every setup script's
  // .build (Debian packages, Go and Rust trees: tens of thousands of files
  // that no mutated test reads).
  // The QEMU guest's kernel and initrd (41 MB) are copied: the QEMU backend's
  // mutants are tested against real QEMU (test/mutation/folders.sh).
  ignorePatterns: [
    "dist",
    "dist-bench",
    "docs/api",
    "reports",
    ".build",
    "!test/interop/qemu/.build",
    "/.cache",
    "bench-profiles",
  ],
  reporters: ["clear-text", "progress", "json", "html"],
  jsonReporter: { fileName: "reports/mutation/mutation.json" },
  htmlReporter: { fileName: "reports/mutation/mutation.html" },
  // Per folder, in test/mutation/scores.mjs; Stryker's own break is the lowest of them.
  thresholds: { high: 80, low: 70, break: 70 },
  concurrency: 1,
  timeoutMS: 10_000,
  cleanTempDir: "always",
};
export default config;
