// The tests StrykerJS runs against each mutant (stryker.config.mjs): the unit
// project without what is too slow to run per mutant or needs more than this
// repository. MUTATION_TESTS (a comma-separated list of globs) narrows it
// further, for a small run. See docs/testing.md, "Mutation testing".
import { defineConfig } from "vitest/config";
import base from "./vitest.config.js";

const only = process.env.MUTATION_TESTS?.split(",").filter((g) => g !== "");

export default defineConfig({
  resolve: base.resolve,
  test: {
    include: only ?? ["test/**/*.test.ts"],
    exclude: [
      // Real Go and NRI peers: minutes to build, seconds per case. A run that
      // names its tests may name an interop file: folders.sh tests the QEMU
      // backend against real QEMU.
      ...(only === undefined ? ["test/interop/**"] : []),
      // The generator (plugins/, out of scope): its tests compile generated
      // code with ts-morph, 11 s a run, and cover runtime lines only in passing.
      "test/plugin/**",
      // Packs and installs the package: not a test of one source line.
      "test/package/**",
      // The CLI (out of scope, src/cli) run as a child process, where no
      // mutant is active; list-describe reads ../shared, outside the sandbox.
      "test/cli/**",
      // The same for these: each builds its child's code with tsc first
      // (test/cli/harness.ts compileForTest), seconds for every mutant they
      // cover, and the child runs unmutated code.
      "test/hybrid-vsock/cli.test.ts",
      "test/nri/nri-cli.test.ts",
      "test/otel/cross-process.test.ts",
      "test/otel/lazy-load.test.ts",
      "test/shim/docs.test.ts",
      "test/shim/run-shim.test.ts",
    ],
    setupFiles: ["./test/setup-leak-check.ts"],
    testTimeout: 30_000,
  },
});
