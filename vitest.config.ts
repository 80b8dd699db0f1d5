import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const src = (p: string) => fileURLToPath(new URL(`./src/${p}`, import.meta.url));

// Tests import the package by its name, as users do; here it resolves to the
// sources, so no build is needed before `npm test`.
const alias = [
  { find: /^ttrpc-es$/, replacement: src("index.ts") },
  { find: /^ttrpc-es\/(.*)$/, replacement: src("$1/index.ts") },
];

export default defineConfig({
  resolve: { alias },
  test: {
    projects: [
      {
        resolve: { alias },
        test: {
          name: "unit",
          include: ["test/**/*.test.ts", "plugins/**/*.test.ts"],
          setupFiles: ["./test/setup-leak-check.ts"],
          exclude: ["test/interop/**"],
          testTimeout: 30_000,
        },
      },
      {
        resolve: { alias },
        test: {
          name: "interop",
          include: ["test/interop/**/*.test.ts"],
          setupFiles: ["./test/setup-leak-check.ts"],
          testTimeout: 60_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
