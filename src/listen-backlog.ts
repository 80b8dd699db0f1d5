import { readFileSync } from "node:fs";

// Node listens with a backlog of 511 unless told otherwise; Go's net package
// reads the kernel's somaxconn (net.core.somaxconn, 4096 on current Linux) and
// asks for that. A burst of connections larger than the accept queue sees
// EAGAIN on unix sockets and dropped SYNs on TCP, so the runtime asks for what
// Go asks for: the queue the kernel would grant anyway.
const NODE_DEFAULT = 511;
// Linux caps listen(2)'s backlog at somaxconn and, before 4.1, at 65535 (u16).
const LINUX_CAP = 65535;

let kernelBacklog: number | undefined;

/** The listen backlog: `requested` when given, else the kernel's somaxconn (read once), else Node's 511. */
export function listenBacklog(requested?: number): number {
  if (requested !== undefined) {
    if (!Number.isInteger(requested) || requested < 1)
      throw new RangeError(`backlog must be a positive integer, got ${requested}`);
    return requested;
  }
  kernelBacklog ??= readSomaxconn();
  return kernelBacklog;
}

/** `/proc/sys/net/core/somaxconn`, or Node's default where there is no such file (macOS, Windows). */
export function readSomaxconn(path = "/proc/sys/net/core/somaxconn"): number {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return NODE_DEFAULT;
  }
  const n = Number.parseInt(text.trim(), 10);
  return Number.isInteger(n) && n > 0 ? Math.min(n, LINUX_CAP) : NODE_DEFAULT;
}
