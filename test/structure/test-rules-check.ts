// Reads the test files with the TypeScript compiler API and reports what the
// suite's own rules forbid (docs/testing.md): a test or suite marked skip,
// only or todo, which vitest would leave out while the run stays green; and
// `vi.waitFor` without an explicit `timeout`, whose 1 s default turns a slow
// but correct run (CI under load, a mutation run) into a failure. Kept apart
// from the test so the check can be seen failing on made-up sources. The
// files are read with structure-check.ts's readSources.
import ts from "typescript";

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
