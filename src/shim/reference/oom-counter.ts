// How often the kernel's OOM killer acted in a container's memory cgroup. Both
// cgroup v1 (memory.oom_control) and v2 (memory.events) keep an `oom_kill N`
// line (Linux 4.13 and later). Go's runc shim is woken by an eventfd (v1) or
// inotify (v2); the reference shim reads the count when one of the
// container's processes exits, so /tasks/oom goes out before that /tasks/exit
// (CRI marks the container OOMKilled from it), and once a second while the
// container runs, for a process the killer took that the shim did not start.
import { existsSync, readFileSync } from "node:fs";

/** The file holding the `oom_kill` count for a process, from its /proc/PID/cgroup text. */
export function oomCountFile(procCgroup: string, root = "/sys/fs/cgroup"): string | undefined {
  let unified: string | undefined;
  for (const line of procCgroup.split("\n")) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (m === null) continue;
    const [, controllers, path] = m as unknown as [string, string, string];
    if (controllers.split(",").includes("memory")) return `${root}/memory${path}/memory.oom_control`;
    if (controllers === "") unified = path;
  }
  // No v1 memory hierarchy: the unified one, when it is mounted as the root (v2 only).
  if (unified !== undefined && existsSync(`${root}/cgroup.controllers`)) return `${root}${unified}/memory.events`;
  return undefined;
}

/** Counts OOM kills in one cgroup, from the count when it was made. */
export class OomCounter {
  #seen: number;

  constructor(private readonly file: string) {
    this.#seen = this.#read() ?? 0;
  }

  /** The counter of the memory cgroup process `pid` is in, or undefined when it has none to read. */
  static of(pid: number): OomCounter | undefined {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/cgroup`, "utf8");
    } catch {
      return undefined; // already gone
    }
    const file = oomCountFile(text);
    return file === undefined || !existsSync(file) ? undefined : new OomCounter(file);
  }

  /** Whether the killer acted since the last look. */
  fired(): boolean {
    const n = this.#read();
    if (n === undefined || n <= this.#seen) return false;
    this.#seen = n;
    return true;
  }

  #read(): number | undefined {
    try {
      const m = /^oom_kill (\d+)$/m.exec(readFileSync(this.file, "utf8"));
      return m === null ? undefined : Number(m[1]);
    } catch {
      return undefined; // the cgroup was removed with the container
    }
  }
}
