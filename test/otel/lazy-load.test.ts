// The runtime's main entry must not reach @opentelemetry/api or src/otel:
// a user who only calls a service installs neither. Checked twice: the import
// graph of src/index.ts as TypeScript reads it (static imports, re-exports,
// dynamic import()s), and a real call from the compiled runtime in a
// directory whose node_modules holds @bufbuild/protobuf and nothing else.
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { compileForTest, repoRoot } from "../cli/harness.js";

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

// Serves and calls Interop.EchoEmpty with the runtime alone, then imports the
// otel entry, which must fail for want of @opentelemetry/api.
const script = `
import { join } from "node:path";
import { connect, createServer } from "./src/index.js";
import { Interop } from "./gen/ttrpces/interop/v1/interop_pb.js";
const server = createServer().register(Interop, { echoEmpty: () => ({}) });
const address = await server.listen(join(process.cwd(), "s.sock"));
const client = await connect(address);
await client.unary(Interop.method.echoEmpty, {});
client.close();
await server.close();
console.log("runtime call ok");
try {
  await import("./src/otel/index.js");
  console.log("otel loaded");
} catch (e) {
  console.log(e.code, e.message.includes("@opentelemetry/api"));
}
`;

describe("with only @bufbuild/protobuf installed", () => {
  it("the runtime serves and calls; ttrpc-es/otel is what asks for @opentelemetry/api", () => {
    const files = ["src/index.ts", "src/otel/index.ts", "gen/ttrpces/interop/v1/interop_pb.ts"];
    const build = compileForTest(files, ["src/index.js", "src/otel/index.js"]);
    const app = mkdtempSync(join(tmpdir(), "ttrpc-es-runtime-only-"));
    try {
      for (const d of ["src", "gen"]) cpSync(join(build.out, d), join(app, d), { recursive: true });
      mkdirSync(join(app, "node_modules/@bufbuild"), { recursive: true });
      symlinkSync(
        realpathSync(join(repoRoot, "node_modules/@bufbuild/protobuf")),
        join(app, "node_modules/@bufbuild/protobuf"),
      );
      const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { cwd: app, encoding: "utf8" });
      expect(r.stderr).toBe("");
      expect(r.stdout.trim().split("\n")).toEqual(["runtime call ok", "ERR_MODULE_NOT_FOUND true"]);
    } finally {
      build.cleanup();
      rmSync(app, { recursive: true, force: true });
    }
  }, 120_000);
});
