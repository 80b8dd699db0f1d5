// Reaping processes the shim did not start. runc forks the container's init
// and exits, so the init is the shim's grandchild: Go's shim marks itself
// child subreaper (prctl PR_SET_CHILD_SUBREAPER) so the kernel reparents such
// orphans to it, and waits for them. Node waits only for the children it
// spawned, so on each SIGCHLD this waits (waitid, WNOHANG) for the pids it was
// asked to watch, one by one: never waitpid(-1), which would steal the exit
// statuses libuv waits for. The libc calls go through the optional koffi
// package, loaded on first use (optional-koffi.ts).
import { koffiBinding } from "../optional-koffi.js";
import { ShimError } from "./shim-error.js";

/** How a process ended, as containerd reports it: a signal's death is 128 + its number. */
export interface ExitStatus {
  readonly pid: number;
  readonly status: number;
  readonly exitedAt: Date;
}

interface Libc {
  prctl(option: number, arg2: number, arg3: number, arg4: number, arg5: number): number;
  waitid(idtype: number, id: number, info: Buffer, options: number): number;
  errno(): number;
}

const PR_SET_CHILD_SUBREAPER = 36;
const P_PID = 1;
const WNOHANG = 1;
const WEXITED = 4;
const ECHILD = 10;
const EINTR = 4;
// siginfo_t on Linux (every architecture Node runs on): si_code at 8, si_pid at 16, si_status at 24.
const SI_CODE = 8;
const SI_PID = 16;
const SI_STATUS = 24;
const CLD_EXITED = 1;

const loadLibc = koffiBinding<Libc>(
  (koffi) => {
    const lib = koffi.load(null);
    return {
      prctl: lib.func("int prctl(int, unsigned long, unsigned long, unsigned long, unsigned long)") as Libc["prctl"],
      waitid: lib.func("int waitid(int, int, _Out_ uint8_t *info, int)") as Libc["waitid"],
      errno: () => koffi.errno(),
    };
  },
  (cause) =>
    new ShimError("reaper-unavailable", "reaping needs the optional dependency koffi (npm install koffi)", { cause }),
);

interface Watch {
  resolve(status: ExitStatus): void;
  reject(error: Error): void;
}

/** Waits for processes reparented to this one. Start it before the processes are made. */
export class Reaper {
  readonly #watches = new Map<number, Watch>();
  readonly #libc: Libc;
  readonly #onSignal = () => this.#poll();

  private constructor(libc: Libc) {
    this.#libc = libc;
  }

  /** Marks this process child subreaper and starts listening for SIGCHLD. */
  static async start(): Promise<Reaper> {
    const c = await loadLibc();
    if (c.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) !== 0) {
      throw new ShimError("reaper-unavailable", `prctl(PR_SET_CHILD_SUBREAPER) failed: errno ${c.errno()}`);
    }
    const reaper = new Reaper(c);
    process.on("SIGCHLD", reaper.#onSignal);
    return reaper;
  }

  /**
   * Resolves when `pid` (a process this one will be, or already is, the
   * parent of) exits. Rejects with ShimError "not-a-child" when it is neither.
   */
  wait(pid: number): Promise<ExitStatus> {
    const existing = this.#watches.get(pid);
    if (existing) return Promise.reject(new ShimError("not-a-child", `pid ${pid} is already watched`));
    const p = new Promise<ExitStatus>((resolve, reject) => this.#watches.set(pid, { resolve, reject }));
    // It may have exited already, before anyone listened.
    this.#check(pid);
    return p;
  }

  /** Stops listening; pending waits reject. */
  stop(): void {
    process.off("SIGCHLD", this.#onSignal);
    for (const [pid, w] of this.#watches)
      w.reject(new ShimError("not-a-child", `reaper stopped before pid ${pid} exited`));
    this.#watches.clear();
  }

  #poll(): void {
    for (const pid of [...this.#watches.keys()]) this.#check(pid);
  }

  #check(pid: number): void {
    const watch = this.#watches.get(pid);
    if (!watch) return;
    const info = Buffer.alloc(128);
    let r = this.#libc.waitid(P_PID, pid, info, WEXITED | WNOHANG);
    while (r !== 0 && this.#libc.errno() === EINTR) r = this.#libc.waitid(P_PID, pid, info, WEXITED | WNOHANG);
    if (r !== 0) {
      const errno = this.#libc.errno();
      this.#watches.delete(pid);
      const why = errno === ECHILD ? "is not a child of this process (is it child subreaper?)" : `errno ${errno}`;
      watch.reject(new ShimError("not-a-child", `waitid(${pid}): ${why}`));
      return;
    }
    if (info.readInt32LE(SI_PID) !== pid) return; // still running
    this.#watches.delete(pid);
    const code = info.readInt32LE(SI_CODE);
    const raw = info.readInt32LE(SI_STATUS);
    watch.resolve({ pid, status: code === CLD_EXITED ? raw : 128 + raw, exitedAt: new Date() });
  }
}
