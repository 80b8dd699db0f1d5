// Finding and waiting for processes the tests did not start themselves (detached shim servers).
import { readdirSync, readFileSync } from "node:fs";

/** Resolves once `pid` is gone: checked every 20 ms, bounded by the test's timeout. */
export async function gone(pid: number): Promise<void> {
  for (;;) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The pids of the processes whose command line (argv) `match` accepts, read from /proc. */
export function pidsWhere(match: (argv: string[]) => boolean): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
    } catch {
      continue; // gone since the listing
    }
    if (match(argv)) pids.push(Number(entry));
  }
  return pids;
}
