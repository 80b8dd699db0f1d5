// Runs protoc-gen-es and protoc-gen-ttrpc-es in-process on protos compiled
// by the real buf, and type-checks what they emit with ts-morph under the
// project's own tsconfig.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { create, fromBinary } from "@bufbuild/protobuf";
import {
  CodeGeneratorRequestSchema,
  CodeGeneratorResponseSchema,
  FileDescriptorSetSchema,
  type CodeGeneratorResponse,
  type FileDescriptorProto,
} from "@bufbuild/protobuf/wkt";
import type { Plugin } from "@bufbuild/protoplugin";
import { Project, ts, type SourceFile } from "ts-morph";
import { protocGenTtrpcEs } from "../../plugins/protoc-gen-ttrpc-es/src/protoc-gen-ttrpc-es.js";

export const repo = fileURLToPath(new URL("../../", import.meta.url));
export const buf = join(repo, "node_modules/.bin/buf");

const require = createRequire(import.meta.url);
const { protocGenEs } = require("@bufbuild/protoc-gen-es/dist/cjs/src/protoc-gen-es-plugin.js") as {
  protocGenEs: Plugin;
};

/** Compiles inline protos (path → source) with `buf build` to descriptors with imports and comments. */
export function compileProtos(protos: Record<string, string>): FileDescriptorProto[] {
  const dir = mkdtempSync(join(tmpdir(), "ttrpc-es-plugin-"));
  try {
    for (const [path, source] of Object.entries(protos)) {
      mkdirSync(dirname(join(dir, "src", path)), { recursive: true });
      writeFileSync(join(dir, "src", path), source);
    }
    const out = join(dir, "fds.binpb");
    execFileSync(buf, ["build", join(dir, "src"), "--as-file-descriptor-set", "-o", out], { stdio: "pipe" });
    return fromBinary(FileDescriptorSetSchema, readFileSync(out)).file;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// Plugin.run throws on errors (runNodeJs prints them and exits 1, which is
// what protoc and buf report); here they become the response's error.
function run(
  plugin: Plugin,
  protoFile: FileDescriptorProto[],
  fileToGenerate: string[],
  parameter: string,
): CodeGeneratorResponse {
  try {
    return plugin.run(create(CodeGeneratorRequestSchema, { fileToGenerate, parameter, protoFile }));
  } catch (e) {
    return create(CodeGeneratorResponseSchema, { error: e instanceof Error ? e.message : String(e) });
  }
}

export interface Generated {
  /** Output name → content, protoc-gen-es's and ours. */
  readonly files: Map<string, string>;
  /** Our plugin's error, "" on success. */
  readonly error: string;
}

/** Runs both plugins over the given protos (all of them are generated). */
export function generate(protos: Record<string, string>, parameter = "target=ts,import_extension=js"): Generated {
  const fds = compileProtos(protos);
  const names = Object.keys(protos);
  const files = new Map<string, string>();
  const es = run(protocGenEs, fds, names, "target=ts,import_extension=js");
  if (es.error) throw new Error(`protoc-gen-es: ${es.error}`);
  for (const f of es.file) files.set(f.name, f.content);
  const ours = run(protocGenTtrpcEs, fds, names, parameter);
  for (const f of ours.file) files.set(f.name, f.content);
  return { files, error: ours.error ?? "" };
}

/** Our output only. */
export function ttrpcFiles(g: Generated): string[] {
  return [...g.files.keys()].filter((n) => !n.endsWith("_pb.ts")).sort();
}

let project: Project | undefined;
let counter = 0;

/**
 * Adds files to one shared ts-morph project (the repo's tsconfig.json, so
 * `ttrpc-es` resolves to src/index.ts and @bufbuild/protobuf to
 * node_modules) under a fresh virtual folder, and returns them.
 */
export function addToProject(files: Map<string, string>): { sources: Map<string, SourceFile>; project: Project } {
  project ??= new Project({ tsConfigFilePath: join(repo, "tsconfig.json"), skipAddingFilesFromTsConfig: true });
  const base = join(repo, "test/plugin/.virtual", String(counter++));
  const sources = new Map<string, SourceFile>();
  for (const [name, content] of files) {
    sources.set(name, project.createSourceFile(join(base, name), content));
  }
  return { sources, project };
}

/** Type errors in the given files, formatted; [] when they type-check. */
export function typeErrors(project: Project, sources: Iterable<SourceFile>): string[] {
  const program = project.getProgram().compilerObject;
  const out: string[] = [];
  for (const sf of sources) {
    const file = program.getSourceFile(sf.getFilePath());
    const diagnostics = [...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file)];
    for (const d of diagnostics) {
      const pos = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start) : undefined;
      out.push(
        `${sf.getBaseName()}${pos ? `:${pos.line + 1}` : ""}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`,
      );
    }
  }
  return out;
}
