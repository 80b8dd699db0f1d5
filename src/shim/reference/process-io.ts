// A process's stdio from the FIFOs containerd names in Create and Exec. The
// FIFOs are opened read-write: on Linux that never waits for the other end,
// so no open can hang the shim (or a worker thread its exit would wait for)
// when a client never opens its side. stdout and stderr are handed to runc,
// whose process inherits them; stdin is copied from its FIFO into a pipe, so
// that CloseIO can end it (holding both ends, the FIFO itself never ends).
import type { ChildProcess, StdioOptions } from "node:child_process";
import { closeSync, constants, openSync } from "node:fs";
import { Socket } from "node:net";

/** The FIFO paths a Create or Exec request names ("" for none). */
export interface StdioPaths {
  readonly stdin: string;
  readonly stdout: string;
  readonly stderr: string;
}

const openFifo = (path: string) => openSync(path, constants.O_RDWR);

/** One process's stdio. */
export class ProcessIo {
  #stdinPipe: NodeJS.WritableStream | undefined;
  #stdinSource: Socket | undefined;
  #out: number | undefined;
  #err: number | undefined;

  constructor(readonly paths: StdioPaths) {
    this.#out = paths.stdout ? openFifo(paths.stdout) : undefined;
    this.#err = paths.stderr ? (paths.stderr === paths.stdout ? this.#out : openFifo(paths.stderr)) : undefined;
  }

  /** The stdio for the runc command whose process inherits it. */
  stdio(): StdioOptions {
    return [this.paths.stdin ? "pipe" : "ignore", this.#out ?? "ignore", this.#err ?? "ignore"];
  }

  /** After runc ran: the process holds its own copies of stdout and stderr; stdin is copied in. */
  attach(runc: ChildProcess): void {
    this.release();
    if (!this.paths.stdin || !runc.stdin) return;
    this.#stdinPipe = runc.stdin;
    runc.stdin.on("error", () => undefined); // the process went away: nothing more to copy
    this.#stdinSource = new Socket({ fd: openFifo(this.paths.stdin), readable: true, writable: false });
    this.#stdinSource.on("error", () => runc.stdin?.end());
    this.#stdinSource.pipe(runc.stdin);
  }

  /** Closes this shim's copies of stdout and stderr. */
  release(): void {
    for (const fd of new Set([this.#out, this.#err])) if (fd !== undefined) closeSync(fd);
    this.#out = undefined;
    this.#err = undefined;
  }

  /** CloseIO: the process sees EOF on stdin. */
  closeStdin(): void {
    this.#stdinSource?.destroy();
    this.#stdinSource = undefined;
    this.#stdinPipe?.end();
  }
}
