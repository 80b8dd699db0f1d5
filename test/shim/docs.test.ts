// The shim example of docs/shim.md and README.md is the fixture run-shim.test.ts runs, but for its import path.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { expect, it } from "vitest";
import { repoRoot } from "../cli/harness.js";

it.each(["docs/shim.md", "README.md"])("%s shows test/shim/fixtures/example-shim.ts", (file) => {
  const doc = readFileSync(join(repoRoot, file), "utf8");
  const block = /example-shim\.ts, which run-shim\.test\.ts runs -->\n```ts\n([\s\S]*?)```/.exec(doc)?.[1];
  const fixture = readFileSync(join(repoRoot, "test/shim/fixtures/example-shim.ts"), "utf8");
  const body = fixture.split("\n").slice(2).join("\n").replace('"../../../src/shim/index.js"', '"ttrpc-es/shim"');
  expect(block).toBe(body);
});
