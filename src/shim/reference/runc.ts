// runc, driven as containerd's go-runc drives it: one state root per
// namespace, a JSON log per bundle whose last error explains a failure.
import { type ChildProcess, execFile, spawn, type StdioOptions } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** A runc command that failed, with runc's own error. */
export class RuncError extends Error {
  override readonly name = "RuncError";
}

/** runc for one namespace's containers. */
export class Runc {
  constructor(
    /** runc's state root, /run/containerd/runc/<namespace> as Go's shim uses. */
    readonly root: string,
    readonly binary = "runc",
  ) {}

  /**
   * `runc create`: the container's init waits for `start`. stdio is handed
   * to runc, whose init inherits it; resolves with the init's pid.
   */
  async create(
    id: string,
    bundle: string,
    stdio: StdioOptions,
    consoleSocket?: string,
  ): Promise<{ pid: number; child: ChildProcess }> {
    const pidFile = join(bundle, "init.pid");
    const args = ["create", "--bundle", bundle, "--pid-file", pidFile, ...consoleArgs(consoleSocket), id];
    const child = this.#spawn(bundle, args, stdio);
    await this.#exited(child, bundle, "create");
    return { pid: readPid(pidFile), child };
  }

  /** `runc exec --detach`: runs `processSpec` (a JSON file) in the container; resolves with its pid. */
  async exec(
    id: string,
    bundle: string,
    execId: string,
    processSpec: string,
    stdio: StdioOptions,
    consoleSocket?: string,
  ) {
    const pidFile = join(bundle, `${execId}.pid`);
    const args = [
      "exec",
      "--detach",
      "--process",
      processSpec,
      "--pid-file",
      pidFile,
      ...consoleArgs(consoleSocket),
      id,
    ];
    const child = this.#spawn(bundle, args, stdio);
    await this.#exited(child, bundle, "exec");
    return { pid: readPid(pidFile), child };
  }

  start(id: string, bundle: string): Promise<void> {
    return this.#run(bundle, ["start", id]);
  }

  kill(id: string, bundle: string, signal: number, all: boolean): Promise<void> {
    return this.#run(bundle, ["kill", ...(all ? ["--all"] : []), id, String(signal)]);
  }

  delete(id: string, bundle: string, force: boolean): Promise<void> {
    return this.#run(bundle, ["delete", ...(force ? ["--force"] : []), id]);
  }

  pause(id: string, bundle: string): Promise<void> {
    return this.#run(bundle, ["pause", id]);
  }

  resume(id: string, bundle: string): Promise<void> {
    return this.#run(bundle, ["resume", id]);
  }

  /** The pids of every process in the container. */
  async ps(id: string, bundle: string): Promise<number[]> {
    const { stdout } = await run(this.binary, [...this.#global(bundle), "ps", "--format", "json", id]).catch(
      (e: unknown) => {
        throw this.#error(bundle, "ps", e);
      },
    );
    return (JSON.parse(stdout) as number[] | null) ?? [];
  }

  #global(bundle: string): string[] {
    return ["--root", this.root, "--log", join(bundle, "log.json"), "--log-format", "json"];
  }

  #spawn(bundle: string, args: string[], stdio: StdioOptions): ChildProcess {
    return spawn(this.binary, [...this.#global(bundle), ...args], { cwd: bundle, stdio });
  }

  async #run(bundle: string, args: string[]): Promise<void> {
    await run(this.binary, [...this.#global(bundle), ...args]).catch((e: unknown) => {
      throw this.#error(bundle, args[0]!, e);
    });
  }

  #exited(child: ChildProcess, bundle: string, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      child.once("error", (e) => reject(this.#error(bundle, what, e)));
      child.once("exit", (code) => (code === 0 ? resolve() : reject(this.#error(bundle, what, `exit ${code}`))));
    });
  }

  #error(bundle: string, what: string, cause: unknown): RuncError {
    return new RuncError(`runc ${what}: ${lastLogError(bundle) ?? String(cause)}`, { cause });
  }
}

function consoleArgs(consoleSocket: string | undefined): string[] {
  return consoleSocket === undefined ? [] : ["--console-socket", consoleSocket];
}

function readPid(path: string): number {
  return Number.parseInt(readFileSync(path, "utf8").trim(), 10);
}

// runc's JSON log: one object a line; the last error-level "msg" says why.
function lastLogError(bundle: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(join(bundle, "log.json"), "utf8");
  } catch {
    return undefined;
  }
  const errors = text
    .split("\n")
    .filter((l) => l.includes('"error"'))
    .map((l) => (JSON.parse(l) as { msg?: string }).msg);
  return errors.at(-1);
}
