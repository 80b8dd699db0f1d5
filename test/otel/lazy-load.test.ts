// The runtime's main entry must not reach @opentelemetry/api or src/otel:
// a user who only calls a service installs neither. Walks the import graph
// of src/index.ts (static imports, re-exports and dynamic import()s) as
// TypeScript reads it.
import { readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const src = resolve(dirname(fileURLToPath(import.meta.url)), "../../src");

function importGraph(entry: string): { files: string[]; packages: string[] } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string) => {
    if (files.has(file)) return;
    files.add(file);
    const { importedFiles } = ts.preProcessFile(readFileSync(file, "utf8"), true, true);
    for (const { fileName } of importedFiles) {
      if (fileName.startsWith(".")) visit(join(dirname(file), fileName).replace(/\.js$/, ".ts"));
      else packages.add(fileName);
    }
  };
  visit(entry);
  return { files: [...files].map((f) => relative(src, f)), packages: [...packages] };
}

describe("optional features load only when used", () => {
  it("ttrpc-es imports nothing of ttrpc-es/otel or OpenTelemetry", () => {
    const { files, packages } = importGraph(join(src, "index.ts"));
    expect(files).toContain("client.ts"); // the walk does follow the runtime
    expect(files.filter((f) => f.startsWith("otel"))).toEqual([]);
    expect(packages.filter((p) => p.startsWith("@opentelemetry/"))).toEqual([]);
  });

  it("ttrpc-es/otel is what brings in @opentelemetry/api", () => {
    expect(importGraph(join(src, "otel/index.ts")).packages).toContain("@opentelemetry/api");
  });
});
