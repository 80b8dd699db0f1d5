import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import {
  type ImportEdge,
  importCircles,
  importGraph,
  layerViolations,
  longFunctions,
  readSources,
} from "./structure/structure-check.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const sources = readSources(root);
const edges = importGraph(sources);

/** The longest a function in src/ may be, in lines. */
const MAX_FUNCTION_LINES = 100;

/**
 * Functions allowed over the limit for now, as `file#name`. Only for files
 * another change is splitting; each entry says which, and goes when it lands.
 */
const ALLOWED_LONG_FUNCTIONS: ReadonlySet<string> = new Set<string>([]);

const report = (title: string, lines: readonly string[]) => `${title}:\n  ${lines.join("\n  ")}\n`;

describe("the structure of src/", () => {
  it("reads the import graph (a check that found no imports would pass anything)", () => {
    expect(sources.size).toBeGreaterThan(50);
    expect(edges.length).toBeGreaterThan(100);
    expect(edges).toContainEqual(expect.objectContaining({ from: "src/client.ts", to: "src/channel.ts" }));
  });

  it("has no import circle", () => {
    const circles = importCircles(edges).map((c) => c.join(" -> "));
    expect(circles, report("import circles", circles)).toEqual([]);
  });

  it("keeps layers: the runtime never imports a feature folder, migration/ never imports a backend", () => {
    const wrong = layerViolations(edges);
    expect(wrong, report("imports against the layers", wrong)).toEqual([]);
  });

  it(`has no function over ${MAX_FUNCTION_LINES} lines`, () => {
    const long = longFunctions(sources, MAX_FUNCTION_LINES)
      .filter((f) => !ALLOWED_LONG_FUNCTIONS.has(`${f.file}#${f.name}`))
      .map((f) => `${f.file}:${f.line} ${f.name} (${f.lines} lines)`);
    expect(long, report(`functions over ${MAX_FUNCTION_LINES} lines`, long)).toEqual([]);
  });

  it("lists no allowed function that is gone or already short", () => {
    const long = new Set(longFunctions(sources, MAX_FUNCTION_LINES).map((f) => `${f.file}#${f.name}`));
    const stale = [...ALLOWED_LONG_FUNCTIONS].filter((f) => !long.has(f));
    expect(stale, report("allow-list entries to remove", stale)).toEqual([]);
  });
});

describe("the structure checks themselves, on made-up sources", () => {
  const made = (files: Record<string, string>) => new Map(Object.entries(files));

  it("find a circle, types included, through an index file", () => {
    const g = importGraph(
      made({
        "src/a.ts": 'import { b } from "./b.js";',
        "src/b.ts": 'import type { C } from "./c/index.js";',
        "src/c/index.ts": 'export * from "../a.js";',
        "src/d.ts": 'import { a } from "./a.js";',
      }),
    );
    expect(importCircles(g)).toEqual([["src/a.ts", "src/b.ts", "src/c/index.ts", "src/a.ts"]]);
  });

  it("find a runtime file importing a feature folder, and migration/ importing a backend", () => {
    const e = (from: string, to: string): ImportEdge => ({ from, to, line: 3 });
    expect(
      layerViolations([
        e("src/client.ts", "src/otel/index.ts"),
        e("src/migration/orchestrator.ts", "src/migration/simulated/transfer-link.ts"),
        e("src/migration/orchestrator.ts", "src/migration/backend.ts"),
        e("src/migration/simulated/transfer-events.ts", "src/migration/backend.ts"),
        e("src/otel/index.ts", "src/client.ts"),
      ]),
    ).toEqual([
      "src/client.ts:3 imports src/otel/index.ts: a runtime file imports a feature folder",
      "src/migration/orchestrator.ts:3 imports src/migration/simulated/transfer-link.ts: migration/ imports a backend (backends depend on the service)",
    ]);
  });

  it("measure arrows, methods and accessors, not only declarations", () => {
    const body = (n: number) => Array.from({ length: n }, (_, i) => `  x${i}();`).join("\n");
    const long = longFunctions(
      made({
        "src/f.ts": [
          `const arrow = () => {\n${body(99)}\n};`,
          `class K {\n  method() {\n${body(98)}\n  }\n  short() {\n${body(98) /* 100 lines with its braces */}\n}\n}`,
        ].join("\n"),
      }),
      100,
    );
    expect(long.map((f) => `${f.name}:${f.lines}`)).toEqual(["arrow:101"]);
  });
});
