// Runs the ttrpc-es CLI as a child process, as users run it. The CLI is built
// once per test file into a private directory (below node_modules/.cache, so
// node finds the dependencies), without type-checking: `npm run typecheck`
// does that, and a private build cannot race other builds of dist/.

import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll } from "vitest";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
/** -I and --proto for the interop service. */
export const interopProto = ["-I", join(repoRoot, "test/proto"), "--proto", "ttrpces/interop/v1/interop.proto"];

/**
 * Compiles the given sources, and what they import, into a private directory
 * laid out as the repository; returns its path and a cleanup. `check` names
 * outputs (relative to the directory) whose absence means the build failed.
 */
export function compileForTest(files: string[], check: string[]): { out: string; cleanup: () => void } {
  const cache = join(repoRoot, "node_modules/.cache");
  mkdirSync(cache, { recursive: true });
  const out = mkdtempSync(join(cache, "ttrpc-es-test-build-"));
  const config = join(out, "tsconfig.json");
  writeFileSync(
    config,
    JSON.stringify({
      extends: join(repoRoot, "tsconfig.build.json"),
      compilerOptions: { outDir: out, rootDir: repoRoot, noCheck: true, declaration: false, sourceMap: false },
      include: [],
      files: files.map((f) => join(repoRoot, f)),
    }),
  );
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  const r = spawnSync(process.execPath, [tsc, "-p", config], { encoding: "utf8" });
  if (!check.every((f) => existsSync(join(out, f)))) {
    rmSync(out, { recursive: true, force: true });
    throw new Error(`building ${files.join(", ")} failed:\n${r.stdout}${r.stderr}`);
  }
  return { out, cleanup: () => rmSync(out, { recursive: true, force: true }) };
}

/** Builds the CLI; returns the path of main.js and a cleanup. */
export function buildCli(): { main: string; cleanup: () => void } {
  const files = ["main", "call-command", "list-command", "describe-command"].map((f) => `src/cli/${f}.ts`);
  const { out, cleanup } = compileForTest(files, ["src/cli/main.js", "src/cli/call-command.js"]);
  return { main: join(out, "src/cli/main.js"), cleanup };
}

/** Builds the CLI before the file's tests, removes it after; returns the path of main.js. */
export function useCli(): () => string {
  let built: { main: string; cleanup: () => void } | undefined;
  beforeAll(() => {
    built = buildCli();
  }, 120_000);
  afterAll(() => built?.cleanup());
  return () => {
    if (built === undefined) throw new Error("the CLI was not built");
    return built.main;
  };
}

export interface CliResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliProcess {
  child: ChildProcessWithoutNullStreams;
  /** Resolves with the next complete stdout line. */
  nextLine(): Promise<string>;
  done: Promise<CliResult>;
}

/** Starts the CLI; the caller drives stdin and reads stdout line by line. */
export function startCli(
  main: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): CliProcess {
  // The compile cache of --proto goes beside the private build, not into the user's cache.
  const cache = { TTRPC_ES_CACHE_DIR: join(dirname(main), "../../proto-cache") };
  const child = spawn(process.execPath, [main, ...args], {
    cwd: options.cwd ?? repoRoot,
    env: { ...process.env, ...cache, ...options.env },
  });
  let stdout = "";
  let stderr = "";
  let consumed = 0;
  const waiters: (() => void)[] = [];
  child.stdout.setEncoding("utf8").on("data", (c: string) => {
    stdout += c;
    for (const w of waiters.splice(0)) w();
  });
  child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
  const done = new Promise<CliResult>((res) =>
    child.on("close", (status, signal) => {
      for (const w of waiters.splice(0)) w();
      res({ status, signal, stdout, stderr });
    }),
  );
  let exited = false;
  void done.then(() => (exited = true));
  const nextLine = async (): Promise<string> => {
    for (;;) {
      const nl = stdout.indexOf("\n", consumed);
      if (nl >= 0) {
        const line = stdout.slice(consumed, nl);
        consumed = nl + 1;
        return line;
      }
      if (exited) throw new Error(`CLI exited before a line arrived; stderr: ${stderr}`);
      await new Promise<void>((r) => waiters.push(r));
    }
  };
  return { child, nextLine, done };
}

/** Runs the CLI to the end with `input` on stdin. */
export function runCli(
  main: string,
  args: string[],
  options: { input?: string; cwd?: string; env?: Record<string, string> } = {},
): Promise<CliResult> {
  const p = startCli(main, args, options);
  p.child.stdin.end(options.input ?? "");
  return p.done;
}
