// Reads the sources of src/ with the TypeScript compiler API and reports what
// the project's structure rules forbid: import circles, a runtime file that
// imports a feature folder, migration/ importing one of its backends, and
// functions over the size limit. Kept apart from the test so the checks can be
// run on small made-up graphs too, where each one is seen failing.
import { readdirSync, readFileSync } from "node:fs";
import { join, posix } from "node:path";
import ts from "typescript";

/** File path (posix, relative to the repository, e.g. `src/client.ts`) to its text. */
export type Sources = ReadonlyMap<string, string>;

export interface ImportEdge {
  readonly from: string;
  readonly to: string;
  readonly line: number;
}

export interface LongFunction {
  readonly file: string;
  readonly line: number;
  readonly name: string;
  readonly lines: number;
}

/**
 * Every `.ts` file under `dir` (relative to `root`), by its posix path. Dot
 * folders (setup scripts' `.build` trees) and node_modules are not read.
 */
export function readSources(root: string, dir = "src"): Map<string, string> {
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

function parse(file: string, text: string): ts.SourceFile {
  return ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
}

/** Module specifiers of static imports, re-exports and `import()` calls. */
function specifiers(sf: ts.SourceFile): { spec: string; node: ts.Node }[] {
  const out: { spec: string; node: ts.Node }[] = [];
  const visit = (node: ts.Node) => {
    if (
      (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) &&
      node.moduleSpecifier !== undefined &&
      ts.isStringLiteral(node.moduleSpecifier)
    )
      out.push({ spec: node.moduleSpecifier.text, node });
    else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] !== undefined &&
      ts.isStringLiteral(node.arguments[0])
    )
      out.push({ spec: node.arguments[0].text, node });
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

/**
 * The import graph between the given files. Type-only imports count: a circle
 * of types is still two files that cannot be understood one without the other.
 */
export function importGraph(sources: Sources): ImportEdge[] {
  const edges: ImportEdge[] = [];
  for (const [file, text] of sources) {
    const sf = parse(file, text);
    for (const { spec, node } of specifiers(sf)) {
      if (!spec.startsWith(".")) continue;
      const target = posix.normalize(posix.join(posix.dirname(file), spec)).replace(/\.js$/, ".ts");
      const to = sources.has(target) ? target : posix.join(target.replace(/\.ts$/, ""), "index.ts");
      if (!sources.has(to)) continue;
      edges.push({ from: file, to, line: sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1 });
    }
  }
  return edges;
}

/** Each import circle once, as the files around it (`a -> b -> a`). */
export function importCircles(edges: readonly ImportEdge[]): string[][] {
  const next = new Map<string, string[]>();
  for (const e of edges) next.set(e.from, [...(next.get(e.from) ?? []), e.to]);
  // Tarjan's strongly connected components; each component of more than one
  // file (or a file importing itself) holds at least one circle.
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const strong = (v: string) => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of next.get(v) ?? []) {
      if (!index.has(w)) {
        strong(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (next.get(v) ?? []).includes(v)) components.push(component);
    }
  };
  for (const v of [...next.keys()].sort()) if (!index.has(v)) strong(v);
  return components.map((c) => circleThrough(c.sort()[0]!, new Set(c), next));
}

/** A shortest path from `start` back to itself inside one component. */
function circleThrough(start: string, inside: ReadonlySet<string>, next: ReadonlyMap<string, string[]>): string[] {
  const from = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift()!;
    for (const w of next.get(v) ?? []) {
      if (!inside.has(w)) continue;
      if (w === start) {
        const path = [start];
        for (let u = v; u !== start; u = from.get(u)!) path.splice(1, 0, u);
        return [...path, start];
      }
      if (!from.has(w)) {
        from.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start, start];
}

const BACKENDS = ["simulated", "testing", "qemu"];

/**
 * Imports that go the wrong way between layers: a runtime file (directly in
 * `src/`) importing a feature folder, and a file of `src/migration/` itself
 * importing one of its backends.
 */
export function layerViolations(edges: readonly ImportEdge[]): string[] {
  const out: string[] = [];
  for (const e of edges) {
    const from = e.from.split("/");
    const to = e.to.split("/");
    const where = `${e.from}:${e.line} imports ${e.to}`;
    if (from.length === 2 && to.length > 2) out.push(`${where}: a runtime file imports a feature folder`);
    if (from.length === 3 && from[1] === "migration" && to[1] === "migration" && BACKENDS.includes(to[2]!))
      out.push(`${where}: migration/ imports a backend (backends depend on the service)`);
  }
  return out;
}

function functionName(node: ts.SignatureDeclaration): string {
  if (node.name !== undefined) {
    const name = node.name.getText();
    const owner = node.parent;
    return ts.isClassLike(owner) && owner.name !== undefined ? `${owner.name.text}.${name}` : name;
  }
  if (ts.isConstructorDeclaration(node)) return "constructor";
  const parent = node.parent;
  if (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent))
    return parent.name.getText();
  return "(anonymous)";
}

/** Every function-like node (arrows and methods too) longer than `max` lines, counted from its first token. */
export function longFunctions(sources: Sources, max: number): LongFunction[] {
  const out: LongFunction[] = [];
  for (const [file, text] of sources) {
    const sf = parse(file, text);
    const visit = (node: ts.Node) => {
      if (ts.isFunctionLike(node) && "body" in node && node.body !== undefined) {
        const first = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
        const last = sf.getLineAndCharacterOfPosition(node.getEnd()).line;
        if (last - first + 1 > max)
          out.push({ file, line: first + 1, name: functionName(node), lines: last - first + 1 });
      }
      ts.forEachChild(node, visit);
    };
    visit(sf);
  }
  return out;
}
