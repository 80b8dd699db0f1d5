// Spawning and talking to the benchmark processes: our Node servers and
// clients (dist-bench/bench/server.js, client.js) and the Go peer. Every process is
// started with stdin open and stopped by PID; each has a hard time limit.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { NodeImpl, ProcessStats } from "./common.js";

/** The repository root (this file runs from dist-bench/bench/). */
export const root = fileURLToPath(new URL("../../", import.meta.url));
const here = fileURLToPath(new URL("./", import.meta.url));
export const goPeer = `${root}test/interop/go/.build/bin/ttrpc-peer`;

/** A server or client process: either one of ours (a NodeImpl) or the Go peer. */
export type Side = NodeImpl | "go";

/** Builds the Go peer (fast when it is up to date). */
export function ensureGoPeer(): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile("bash", [`${root}test/interop/go/setup.sh`], { maxBuffer: 16 << 20 }, (err, _out, stderr) =>
      err ? reject(new Error(`test/interop/go/setup.sh failed: ${err.message}\n${stderr}`)) : resolve(),
    );
  });
}

/** Node flags for our processes: --expose-gc always; --cpu-prof when profiling. */
function nodeArgs(script: string, profileDir: string | undefined): string[] {
  const prof = profileDir === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${profileDir}`];
  return ["--expose-gc", ...prof, `${here}${script}`];
}

/** A child whose stdout is read line by line. */
class Proc {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #lines: string[] = [];
  #waiters: ((line: string | undefined) => void)[] = [];
  #stderr = "";
  #ended = false;

  constructor(
    readonly what: string,
    cmd: string,
    args: string[],
  ) {
    this.child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
    this.child.stdin!.on("error", () => {}); // EPIPE once the child is gone
    let buf = "";
    this.child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      buf += chunk;
      for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
        this.#line(buf.slice(0, nl).trim());
        buf = buf.slice(nl + 1);
      }
    });
    this.child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      this.#stderr = (this.#stderr + chunk).slice(-16384);
    });
    this.exited = new Promise((resolve) => {
      this.child.once("exit", (code, signal) => {
        this.#ended = true;
        for (const w of this.#waiters.splice(0)) w(undefined);
        resolve({ code, signal });
      });
      this.child.once("error", (e) => {
        this.#stderr += `\nspawn failed: ${e.message}`;
        this.#ended = true;
        for (const w of this.#waiters.splice(0)) w(undefined);
        resolve({ code: -1, signal: null });
      });
    });
  }

  #line(line: string): void {
    if (line === "") return;
    const w = this.#waiters.shift();
    if (w !== undefined) w(line);
    else this.#lines.push(line);
  }

  /** The next stdout line, or an error when the process ends or `timeoutMs` passes first. */
  async nextLine(timeoutMs: number): Promise<string> {
    const queued = this.#lines.shift();
    if (queued !== undefined) return queued;
    if (this.#ended) throw this.failure("exited");
    let timer: NodeJS.Timeout | undefined;
    const line = await new Promise<string | undefined>((resolve) => {
      const w = (l: string | undefined) => {
        clearTimeout(timer);
        resolve(l);
      };
      this.#waiters.push(w);
      timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        resolve(undefined);
      }, timeoutMs);
    });
    if (line === undefined) throw this.failure(this.#ended ? "exited" : `gave no answer within ${timeoutMs} ms`);
    return line;
  }

  send(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }

  failure(why: string): Error {
    const st = this.child.exitCode ?? this.child.signalCode;
    return new Error(`${this.what} ${why}${st === null ? "" : ` (exit ${st})`}; stderr:\n${this.#stderr.trim()}`);
  }

  /** Closes stdin (our processes and the Go server exit on that), then SIGTERM, then SIGKILL. */
  async stop(): Promise<void> {
    if (this.#ended) return;
    this.child.stdin!.end();
    const grace = (ms: number) =>
      Promise.race([this.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref())]);
    if (await grace(2000)) return;
    this.child.kill("SIGTERM");
    if (await grace(2000)) return;
    this.child.kill("SIGKILL");
    await this.exited;
  }
}

/** A running benchmark server. */
export class ServerProc {
  private constructor(
    readonly side: Side,
    private readonly proc: Proc,
  ) {}

  static async start(side: Side, socket: string, profileDir?: string): Promise<ServerProc> {
    const proc =
      side === "go"
        ? new Proc("Go server", goPeer, ["server", "--socket", socket])
        : new Proc(`${side} server`, process.execPath, [
            ...nodeArgs("server.js", profileDir),
            "--impl",
            side,
            "--socket",
            socket,
          ]);
    try {
      const line = await proc.nextLine(30_000);
      if (line !== "READY") throw proc.failure(`printed ${JSON.stringify(line)} instead of READY`);
    } catch (e) {
      await proc.stop();
      throw e;
    }
    return new ServerProc(side, proc);
  }

  get pid(): number {
    return this.proc.child.pid!;
  }

  /** Resident set size from /proc (after a full GC for our Node servers). */
  async rss(): Promise<number> {
    if (this.side !== "go") await this.stats();
    const status = readFileSync(`/proc/${this.pid}/status`, "utf8");
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(status);
    if (m === null) throw new Error(`no VmRSS in /proc/${this.pid}/status`);
    return Number(m[1]) * 1024;
  }

  /** CPU seconds (user + system) the server has used so far, from /proc (10 ms ticks). */
  cpuSeconds(): number {
    const stat = readFileSync(`/proc/${this.pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // After the command: state is field 3, utime 14 and stime 15 (man 5 proc).
    return (Number(fields[11]) + Number(fields[12])) / 100;
  }

  /** Heap and handles of our Node servers, after a full GC. */
  async stats(): Promise<ProcessStats> {
    if (this.side === "go") throw new Error("the Go server reports no heap stats");
    this.proc.send("stats");
    return JSON.parse(await this.proc.nextLine(30_000)) as ProcessStats;
  }

  stop(): Promise<void> {
    return this.proc.stop();
  }
}

/** A line a client printed at a barrier. */
export interface Barrier {
  barrier: string;
  client: ProcessStats;
  [k: string]: unknown;
}

/**
 * Runs a client to completion and returns its result line. `onBarrier` runs at
 * each barrier line (ours only) before the client is let go on.
 */
export async function runClient(
  side: Side,
  socket: string,
  scenario: string,
  opts: Record<string, number>,
  timeoutMs: number,
  onBarrier?: (b: Barrier) => Promise<void>,
  profileDir?: string,
): Promise<Record<string, unknown>> {
  const flags = Object.entries(opts).flatMap(([k, v]) => [`--${k}`, String(v)]);
  const proc =
    side === "go"
      ? new Proc(`Go client ${scenario}`, goPeer, ["client", "--socket", socket, "--scenario", scenario, ...flags])
      : new Proc(`${side} client ${scenario}`, process.execPath, [
          ...nodeArgs("client.js", profileDir),
          "--impl",
          side,
          "--socket",
          socket,
          "--scenario",
          scenario,
          ...flags,
        ]);
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      const line = await proc.nextLine(Math.max(1, deadline - Date.now()));
      let obj: Record<string, unknown>;
      try {
        obj = JSON.parse(line) as Record<string, unknown>;
      } catch {
        throw proc.failure(`printed a line that is not JSON: ${line}`);
      }
      if (typeof obj.barrier === "string") {
        if (onBarrier === undefined) throw proc.failure(`stopped at barrier ${String(obj.barrier)} nobody handles`);
        await onBarrier(obj as Barrier);
        proc.send("go");
        continue;
      }
      const { code } = await Promise.race([
        proc.exited,
        new Promise<{ code: number }>((r) =>
          setTimeout(() => r({ code: -2 }), Math.max(1, deadline - Date.now())).unref(),
        ),
      ]);
      if (code !== 0) throw proc.failure(code === -2 ? "did not exit after its result" : "failed");
      return obj;
    }
  } finally {
    await proc.stop();
  }
}
