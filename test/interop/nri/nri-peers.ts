// Helpers for the NRI interop tests: the Go peers built by setup.sh from
// Debian trixie's containerd/nri 0.6.1 (see runtime/main.go and plugin/main.go).
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { runSetupScript } from "../go-peer.js";

const here = fileURLToPath(new URL("./", import.meta.url));
const build = `${here}.build/`;

export interface NriPeers {
  runtime: string;
  goPlugin: string;
  containerd: string;
  ctr: string;
}

let setup: Promise<NriPeers> | undefined;

/** Builds the peers once per process; rejects with setup's stderr (a missing peer fails the suite, never skips it). */
export function ensureNriPeers(): Promise<NriPeers> {
  setup ??= runSetupScript(`${here}setup.sh`).then(() => ({
    runtime: `${build}bin/nri-runtime`,
    goPlugin: `${build}bin/nri-go-plugin`,
    containerd: `${build}containerd/usr/bin/containerd`,
    ctr: `${build}containerd/usr/bin/ctr`,
  }));
  return setup;
}

/** A Go process that speaks JSON lines: commands on stdin, replies and events on stdout. */
export interface JsonLinesPeer {
  /** Sends a command and resolves with the next line whose `key` field equals `value`. */
  request(command: Record<string, unknown>, key?: string): Promise<Record<string, unknown>>;
  /** Resolves with the next line for which `match` is true (lines seen earlier count too). */
  next(match: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
  /** Closes stdin and waits for the process to exit; resolves with its exit code. */
  close(): Promise<number | null>;
  /** Kills the process (SIGKILL) and waits for it. */
  kill(): Promise<void>;
  stderr(): string;
  readonly exited: Promise<number | null>;
}

export function startJsonLinesPeer(bin: string, args: string[]): JsonLinesPeer {
  const child: ChildProcessWithoutNullStreams = spawn(bin, args, { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (c: string) => {
    stderr = (stderr + c).slice(-(64 << 10));
  });
  const lines: Record<string, unknown>[] = [];
  const waiters: { match: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }[] =
    [];
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const rl = createInterface({ input: child.stdout, crlfDelay: Number.POSITIVE_INFINITY });
  rl.on("line", (text) => {
    const line = JSON.parse(text) as Record<string, unknown>;
    const i = waiters.findIndex((w) => w.match(line));
    if (i >= 0) waiters.splice(i, 1)[0]!.resolve(line);
    else lines.push(line);
  });
  const next = (match: (l: Record<string, unknown>) => boolean) => {
    const i = lines.findIndex(match);
    if (i >= 0) return Promise.resolve(lines.splice(i, 1)[0]!);
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      waiters.push({ match, resolve });
      exited.then((code) => reject(new Error(`${bin} exited (${code}) while waiting; stderr:\n${stderr}`)));
    });
  };
  return {
    request(command, key = "op") {
      const reply = next((l) => l[key] === command[key]);
      child.stdin.write(`${JSON.stringify(command)}\n`);
      return reply;
    },
    next,
    async close() {
      child.stdin.end();
      return exited;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
    stderr: () => stderr,
    exited,
  };
}
