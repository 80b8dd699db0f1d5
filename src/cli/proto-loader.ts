// Loads the descriptors the CLI works from: .proto files compiled at run time
// with the buf binary of @bufbuild/buf (offline, well-known types built in),
// and/or prebuilt FileDescriptorSets.

import { spawn } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { isAbsolute, join, relative, resolve, sep } from "node:path";
import {
  create,
  createFileRegistry,
  createRegistry,
  fromBinary,
  type DescService,
  type FileRegistry,
  type Registry,
} from "@bufbuild/protobuf";
import { nestedTypes } from "@bufbuild/protobuf/reflect";
import * as wkt from "@bufbuild/protobuf/wkt";
import { FileDescriptorSetSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { builtinProtos, filesOf } from "./builtin-protos.js";
import { CliError, Exit } from "./cli-support.js";
import { compilerIdentity, ProtoCache, protoCacheDir } from "./proto-cache.js";
import { allServices } from "./symbols.js";

export interface ProtoSources {
  /** .proto files, as given on the command line. */
  protos: readonly string[];
  /** -I directories; the current directory when empty. */
  importPaths: readonly string[];
  /** FileDescriptorSet files. */
  protosets: readonly string[];
  cwd?: string;
}

export interface LoadedProtos {
  /** Every file compiled or read, with its imports. */
  files: FileRegistry;
  /** What `list` shows: the services of the files given, or the built-in ones when none were. */
  services: DescService[];
  /**
   * For JSON: the files plus the well-known types, so an Any holding a
   * Timestamp or Struct prints even when no .proto imported it. Any type URLs
   * resolve by the name after the last `/`, as Go's typeurl does
   * (`containerd.task.v2.StartRequest` and `type.googleapis.com/...` alike).
   */
  registry: Registry;
}

/** The sources named by the options of `protoOptions` (--proto, -I, --protoset). */
export function protoSources(values: {
  proto?: string[] | undefined;
  "import-path"?: string[] | undefined;
  protoset?: string[] | undefined;
}): ProtoSources {
  return { protos: values.proto ?? [], importPaths: values["import-path"] ?? [], protosets: values.protoset ?? [] };
}

/** Links the descriptors into a registry; a failure is a CliError saying what to check. */
function link(files: FileDescriptorProto[], fromProtoset: boolean): FileRegistry {
  try {
    return createFileRegistry(create(FileDescriptorSetSchema, { file: files }));
  } catch (e) {
    throw new CliError(
      `cannot link the descriptors: ${(e as Error).message}` +
        (fromProtoset ? " (was the protoset built with its imports? protoc needs --include_imports)" : ""),
      Exit.protos,
    );
  }
}

/**
 * The built-in files the given ones leave room for: a built-in file is kept
 * unless a given file has its name or defines one of its types (the given one
 * overrides it), and only when all it imports is kept or given.
 */
function builtinsBeside(given: FileRegistry, builtins: FileDescriptorProto[]): FileDescriptorProto[] {
  const names = new Set<string>();
  for (const f of given.files) for (const t of nestedTypes(f)) names.add(t.typeName);
  const available = new Set([...given.files].map((f) => f.name));
  const builtinRegistry = link(builtins, false);
  const kept: FileDescriptorProto[] = [];
  for (const proto of builtins) {
    const file = builtinRegistry.getFile(proto.name)!;
    if (available.has(proto.name) || !proto.dependency.every((d) => available.has(d))) continue;
    if ([...nestedTypes(file)].some((t) => names.has(t.typeName))) continue;
    available.add(proto.name);
    kept.push(proto);
  }
  return kept;
}

/** The files named on the command line, compiled or read, and linked. */
export interface GivenProtos {
  files: FileDescriptorProto[];
  registry: FileRegistry;
}

/** Compiles the --proto files and reads the protosets; a failure is a CliError with status `Exit.protos`. */
export async function loadGiven(src: ProtoSources): Promise<GivenProtos> {
  const cwd = src.cwd ?? process.cwd();
  const files: FileDescriptorProto[] = [];
  if (src.protos.length > 0) files.push(...(await compileProtos(src.protos, src.importPaths, cwd)));
  for (const p of src.protosets) files.push(...readProtoset(resolve(cwd, p)));
  const seen = new Set<string>();
  const unique = files.filter((f) => !seen.has(f.name) && seen.add(f.name));
  return { files, registry: link(unique, src.protosets.length > 0) };
}

/**
 * Loads and links the descriptors: the files given, and the built-in ones
 * (containerd, NRI, Migration) they do not override. Every failure is a
 * CliError with status `Exit.protos`. `given` is what {@link loadGiven}
 * returned for `src`, when the caller has it already.
 */
export async function loadProtos(src: ProtoSources, given?: GivenProtos): Promise<LoadedProtos> {
  const { files, registry: givenRegistry } = given ?? (await loadGiven(src));
  const builtins = builtinsBeside(givenRegistry, await builtinProtos());
  const registry =
    builtins.length === 0 ? givenRegistry : link([...[...givenRegistry.files].map((f) => f.proto), ...builtins], false);
  const services = allServices(files.length > 0 ? givenRegistry : registry);
  const wktFiles = filesOf(wkt);
  return { files: registry, services, registry: createRegistry(...wktFiles, registry) };
}

function readProtoset(path: string): FileDescriptorProto[] {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new CliError(
      `cannot read protoset ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      Exit.protos,
    );
  }
  try {
    return fromBinary(FileDescriptorSetSchema, bytes).file;
  } catch (e) {
    throw new CliError(`${path} is not a FileDescriptorSet: ${(e as Error).message}`, Exit.protos);
  }
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/** Where a --proto file is: the index of its import root and its path below it. */
interface Target {
  root: number;
  name: string;
}

/** Resolves --proto files against the import roots as protoc does; may add the file's own directory as a root. */
export function resolveTargets(
  protos: readonly string[],
  importPaths: readonly string[],
  cwd: string,
): { roots: string[]; targets: Target[] } {
  const roots: string[] = [];
  const addRoot = (dir: string): number => {
    const real = realpathSync(dir);
    const i = roots.indexOf(real);
    if (i >= 0) return i;
    roots.push(real);
    return roots.length - 1;
  };
  for (const dir of importPaths.length > 0 ? importPaths : [cwd]) {
    const abs = resolve(cwd, dir);
    if (!isDir(abs)) throw new CliError(`import path ${dir} is not a directory`, Exit.protos);
    addRoot(abs);
  }
  const targets: Target[] = [];
  for (const proto of protos) {
    // A name below one of the roots, as protoc takes it.
    const byName = isAbsolute(proto) ? -1 : roots.findIndex((r) => isFile(join(r, proto)));
    if (byName >= 0) {
      targets.push({ root: byName, name: proto.split(sep).join("/") });
      continue;
    }
    // A path to the file (from the current directory), below one of the roots.
    const abs = resolve(cwd, proto);
    if (!isFile(abs)) {
      throw new CliError(
        `cannot find ${proto}: not a file, and not below ` +
          `${importPaths.length > 0 ? "any -I directory" : "the current directory"} (${roots.join(", ")})`,
        Exit.protos,
      );
    }
    const real = realpathSync(abs);
    const root = roots.findIndex((r) => !relative(r, real).startsWith("..") && !isAbsolute(relative(r, real)));
    if (root >= 0) {
      targets.push({ root, name: relative(roots[root]!, real).split(sep).join("/") });
    } else if (importPaths.length === 0) {
      // No -I and the file lies elsewhere: its directory is the root.
      const dirRoot = addRoot(resolve(real, ".."));
      targets.push({ root: dirRoot, name: relative(roots[dirRoot]!, real) });
    } else {
      throw new CliError(
        `${proto} is not below any -I directory (${roots.join(", ")}); add -I with its import root`,
        Exit.protos,
      );
    }
  }
  return { roots, targets };
}

/** The buf binary: $TTRPC_ES_BUF, the platform package of @bufbuild/buf, or its node launcher. */
export function findBuf(): { command: string; args: string[] } | undefined {
  const env = process.env.TTRPC_ES_BUF;
  if (env !== undefined && env !== "") return existsSync(env) ? { command: env, args: [] } : undefined;
  const require = createRequire(import.meta.url);
  const arch =
    process.platform === "linux"
      ? ({ arm64: "aarch64", arm: "armv7" } as Record<string, string>)[process.arch]
      : undefined;
  const exe = process.platform === "win32" ? "buf.exe" : "buf";
  try {
    return {
      command: require.resolve(`@bufbuild/buf-${process.platform}-${arch ?? process.arch}/bin/${exe}`),
      args: [],
    };
  } catch {
    // fall through to the launcher
  }
  try {
    return { command: process.execPath, args: [require.resolve("@bufbuild/buf/bin/buf")] };
  } catch {
    return undefined;
  }
}

async function compileProtos(
  protos: readonly string[],
  importPaths: readonly string[],
  cwd: string,
): Promise<FileDescriptorProto[]> {
  const { roots, targets } = resolveTargets(protos, importPaths, cwd);
  const buf = findBuf();
  if (buf === undefined) {
    throw new CliError(
      "cannot compile .proto files: the buf binary was not found; " +
        "install @bufbuild/buf (npm install @bufbuild/buf) or pass --protoset FILE",
      Exit.protos,
    );
  }
  const paths = targets.map((t) => `i${t.root}/${t.name}`);
  const dir = protoCacheDir();
  const cache =
    dir === undefined ? undefined : new ProtoCache(dir, roots, paths, compilerIdentity(buf.command, buf.args));
  const cached = cache?.get();
  if (cached !== undefined) {
    try {
      return fromBinary(FileDescriptorSetSchema, cached).file;
    } catch {
      // a damaged entry: compile again, which replaces it
    }
  }
  const bytes = await runBuf(buf, roots, paths, protos);
  const files = fromBinary(FileDescriptorSetSchema, bytes).file;
  cache?.put(
    bytes,
    files.map((f) => f.name),
  );
  return files;
}

/** Runs `buf build` on the targets (`i<root>/<name>`); returns the FileDescriptorSet it wrote. */
async function runBuf(
  buf: { command: string; args: string[] },
  roots: readonly string[],
  paths: readonly string[],
  protos: readonly string[],
): Promise<Uint8Array> {
  // A throwaway buf workspace: one module per import root, linked in, so
  // roots anywhere on disk work and nothing is written next to the protos.
  const work = mkdtempSync(join(tmpdir(), "ttrpc-es-buf-"));
  try {
    for (const [i, r] of roots.entries()) symlinkSync(r, join(work, `i${i}`), "junction");
    writeFileSync(
      join(work, "buf.yaml"),
      `version: v2\nmodules:\n${roots.map((_, i) => `  - path: i${i}\n`).join("")}`,
    );
    const args = [...buf.args, "build", ".", "--as-file-descriptor-set", "-o", "-"];
    for (const p of paths) args.push("--path", p);
    const { status, stdout, stderr } = await run(buf.command, args, work);
    if (status !== 0) {
      const text = stderr
        .replaceAll(`${work}${sep}`, "")
        .replace(/^i(\d+)\//gm, (m, n: string) => (roots[Number(n)] === undefined ? m : `${roots[Number(n)]}${sep}`))
        .trim();
      throw new CliError(
        `cannot compile ${protos.join(", ")}:\n${explainImports(text) || `buf exited with status ${status}`}`,
        Exit.protos,
      );
    }
    return stdout;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

// buf says "imported file does not exist" without the name; add it from the source line.
function explainImports(text: string): string {
  return text.replace(
    /^(.+\.proto):(\d+):\d+:imported file does not exist$/gm,
    (line, file: string, lineNo: string) => {
      try {
        const src = readFileSync(file, "utf8").split("\n")[Number(lineNo) - 1] ?? "";
        const name = /import\s+(?:public\s+|weak\s+)?"([^"]+)"/.exec(src)?.[1];
        if (name !== undefined) return `${line}: import "${name}" not found in any -I directory`;
      } catch {
        // keep buf's words
      }
      return line;
    },
  );
}

function run(
  command: string,
  args: string[],
  cwd: string,
): Promise<{ status: number; stdout: Uint8Array; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => out.push(c));
    child.stderr.on("data", (c: Buffer) => err.push(c));
    child.on("error", (e) =>
      reject(
        new CliError(
          `cannot run buf (${command}): ${e.message}; install @bufbuild/buf or pass --protoset FILE`,
          Exit.protos,
        ),
      ),
    );
    child.on("close", (code, signal) =>
      resolvePromise({
        status: code ?? (signal === null ? 1 : 128),
        stdout: Buffer.concat(out),
        stderr: Buffer.concat(err).toString("utf8"),
      }),
    );
  });
}
