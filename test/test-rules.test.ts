import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { readSources } from "./structure/structure-check.js";
import { testRuleBreaks } from "./structure/test-rules-check.js";

const root = fileURLToPath(new URL("..", import.meta.url));

describe("the rules the tests keep (docs/testing.md)", () => {
  const sources = readSources(root, "test");

  it("reads the test files (a check that found none would pass anything)", () => {
    expect(sources.size).toBeGreaterThan(100);
    expect([...sources.keys()]).toContain("test/test-rules.test.ts");
  });

  it("leaves no test out (skip, only, todo) and bounds every vi.waitFor", () => {
    const breaks = testRuleBreaks(sources);
    expect(breaks, `test rules broken:\n  ${breaks.join("\n  ")}\n`).toEqual([]);
  });
});

describe("the test-rule check itself, on made-up sources", () => {
  const check = (text: string) => testRuleBreaks(new Map([["test/made-up.test.ts", text]]));

  it("reports a test left out, wherever it stands", () => {
    expect(check('it.skip("a", () => {});\n\ndescribe.only("b", () => {});')).toEqual([
      "test/made-up.test.ts:1 it.skip",
      "test/made-up.test.ts:3 describe.only",
    ]);
    expect(check('test.todo("c");')).toEqual(["test/made-up.test.ts:1 test.todo"]);
    expect(check('it.skipIf(slow)("d", () => {});')).toEqual(["test/made-up.test.ts:1 it.skipIf"]);
  });

  it("reports vi.waitFor with the default timeout, and passes one that names it", () => {
    expect(check("await vi.waitFor(() => expect(x).toBe(1));")).toEqual([
      "test/made-up.test.ts:1 vi.waitFor without a timeout",
    ]);
    expect(check("await vi.waitFor(() => expect(x).toBe(1), { interval: 5 });")).toEqual([
      "test/made-up.test.ts:1 vi.waitFor without a timeout",
    ]);
    expect(check("await vi.waitFor(() => expect(x).toBe(1), { timeout: 10_000 });")).toEqual([]);
  });

  it("leaves alone what only looks alike", () => {
    expect(check('it.each([1])("e %i", () => {}); test.runIf(linux)("f", () => {}); s.skip(2);')).toEqual([]);
  });
});
