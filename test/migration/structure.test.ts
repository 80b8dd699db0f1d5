// The reference server stays in small pieces: no function or method of its
// modules is over 100 lines (the style rule), checked on the source's syntax tree.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const MAX_LINES = 100;
const dir = fileURLToPath(new URL("../../src/migration/", import.meta.url));
const modules = [
  "init-options.ts",
  "migration-controller.ts",
  "migration-errors.ts",
  "migration-server.ts",
  "migration-service.ts",
  "migration-session.ts",
  "notifier.ts",
  "save-payload.ts",
  "session-state.ts",
  "task-rules.ts",
  "transfer-run.ts",
];

/** Every function-like node of a file: its name and length in lines. */
function functions(file: string): { name: string; lines: number }[] {
  const text = readFileSync(dir + file, "utf8");
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found: { name: string; lines: number }[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && "body" in node && node.body !== undefined) {
      const start = source.getLineAndCharacterOfPosition(node.getStart(source)).line;
      const end = source.getLineAndCharacterOfPosition(node.getEnd()).line;
      const name = node.name !== undefined ? node.name.getText(source) : `(anonymous, line ${start + 1})`;
      found.push({ name: `${file}: ${name}`, lines: end - start + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

describe("reference Migration server structure", () => {
  it(`has no function or method over ${MAX_LINES} lines`, () => {
    const all = modules.flatMap(functions);
    expect(all.length).toBeGreaterThan(50); // the walk found the code it checks
    expect(all.filter((f) => f.lines > MAX_LINES)).toEqual([]);
  });

  it("createMigrationService is a factory, not the server itself", () => {
    const factory = functions("migration-service.ts").find((f) => f.name.endsWith(": createMigrationService"));
    expect(factory?.lines).toBeLessThan(20);
  });
});
