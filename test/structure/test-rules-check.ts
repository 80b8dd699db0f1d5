// Reads the test files with the TypeScript compiler API and reports what the
// suite's own rules forbid (docs/testing.md): a test or suite marked skip,
// only or todo, which vitest would leave out while the run stays green; and
// `vi.waitFor` without an explicit `timeout`, whose 1 s default turns a slow
// but correct run (CI under load, a mutation run) into a failure. Kept apart
// from the test so the check can be seen failing on made-up sources.
import { readdirSync, readFileSync } from "node:fs";
import { join, posix } from "node:path";
import ts from "typescript";

/** Every `.ts` file under `dir`, by its posix path, without dot folders (setup trees) or node_modules. */
export function readTestSources(root: string, dir = "test"): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string) => {
    for (const entry of readdirSync(join(root, rel), { withFileTypes: true })) {
      if (entry.name.startsWith(".") || entry.name === "node_modules") continue;
      const path = posix.join(rel, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts"))
        out.set(path, readFileSync(join(root, path), "utf8"));
    }
  };
  walk(dir);
  return out;
}

const TEST_FUNCTIONS = new Set(["it", "test", "describe", "suite", "bench"]);
const LEFT_OUT = new Set(["skip", "only", "todo", "skipIf"]);

/** `file:line what` for each break of the rules above. */
export function testRuleBreaks(sources: ReadonlyMap<string, string>): string[] {
  const breaks: string[] = [];
  for (const [file, text] of sources) {
    const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
    const at = (node: ts.Node) => `${file}:${source.getLineAndCharacterOfPosition(node.getStart()).line + 1}`;
    const visit = (node: ts.Node): void => {
      if (ts.isPropertyAccessExpression(node) && ts.isIdentifier(node.expression)) {
        const [object, name] = [node.expression.text, node.name.text];
        if (TEST_FUNCTIONS.has(object) && LEFT_OUT.has(name)) breaks.push(`${at(node)} ${object}.${name}`);
      }
      if (ts.isCallExpression(node) && node.expression.getText(source) === "vi.waitFor" && !hasTimeout(node))
        breaks.push(`${at(node)} vi.waitFor without a timeout`);
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return breaks;
}

/** Whether a `vi.waitFor(fn, options)` call names `timeout` in an options object literal. */
function hasTimeout(call: ts.CallExpression): boolean {
  const options = call.arguments[1];
  if (options === undefined) return false;
  // A number is the timeout itself; a variable is trusted to carry one.
  if (!ts.isObjectLiteralExpression(options)) return true;
  return options.properties.some((p) => p.name !== undefined && ts.isIdentifier(p.name) && p.name.text === "timeout");
}
