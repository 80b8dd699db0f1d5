// Starts test/peer-credentials/peer-process.mjs, as this user or as another
// one through runuser (the tests run as root, as CI does), and reads its
// JSON event lines.
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { onTestFinished } from "vitest";

const script = fileURLToPath(new URL("./peer-process.mjs", import.meta.url));

export interface PeerEvent {
  pid: number;
  uid: number;
  connected?: boolean;
  listening?: boolean;
  closed?: boolean;
  answeredBytes?: number;
}

export interface PeerProcess {
  readonly child: ChildProcess;
  /** The first event (so far or to come) that matches. */
  next(match: (e: PeerEvent) => boolean): Promise<PeerEvent>;
  /** Ends a server peer (closes its stdin) and waits for the process to exit. */
  stop(): Promise<void>;
}

/** Runs the peer script with `args`, as `user` when given (through `runuser -u user --`). */
export function startPeer(args: string[], user?: string): PeerProcess {
  // Another user may not be able to reach the checkout (CI clones it wherever
  // it likes): that user runs a copy in a directory anyone can read.
  let copyDir: string | undefined;
  let path = script;
  if (user !== undefined) {
    copyDir = mkdtempSync(join(tmpdir(), "ttrpc-es-peer-"));
    chmodSync(copyDir, 0o755);
    path = join(copyDir, "peer-process.mjs");
    copyFileSync(script, path);
    chmodSync(path, 0o644);
  }
  const argv = [path, ...args];
  const child =
    user === undefined
      ? spawn(process.execPath, argv, { stdio: ["pipe", "pipe", "pipe"] })
      : spawn("runuser", ["-u", user, "--", process.execPath, ...argv], { stdio: ["pipe", "pipe", "pipe"] });
  const events: PeerEvent[] = [];
  const waiters: (() => void)[] = [];
  let stderr = "";
  let buffered = "";
  const exited = new Promise<void>((resolve) => child.on("close", () => resolve()));
  let done = false;
  void exited.then(() => {
    done = true;
    for (const w of waiters.splice(0)) w();
  });
  child.stderr!.on("data", (c: Buffer) => {
    stderr += c.toString();
  });
  child.stdout!.on("data", (c: Buffer) => {
    buffered += c.toString();
    for (let i = buffered.indexOf("\n"); i >= 0; i = buffered.indexOf("\n")) {
      events.push(JSON.parse(buffered.slice(0, i)) as PeerEvent);
      buffered = buffered.slice(i + 1);
    }
    for (const w of waiters.splice(0)) w();
  });
  const stop = async () => {
    child.stdin!.end();
    await exited;
    if (copyDir !== undefined) rmSync(copyDir, { recursive: true, force: true });
  };
  onTestFinished(stop);
  return {
    child,
    stop,
    async next(match) {
      for (;;) {
        const found = events.find(match);
        if (found !== undefined) return found;
        if (done) throw new Error(`peer process exited (${child.exitCode}) without the event: ${stderr}`);
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
    },
  };
}
