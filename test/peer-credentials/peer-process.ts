// Starts test/peer-credentials/peer-process.mjs, as this user or as another
// one through runuser (the tests run as root, as CI does), and reads its
// JSON event lines.
import { spawn, type ChildProcess } from "node:child_process";
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
  const argv = [script, ...args];
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
