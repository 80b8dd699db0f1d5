// A process's stdio from the FIFOs containerd names in Create and Exec. The
// FIFOs are opened read-write: on Linux that never waits for the other end,
// so no open can hang the shim (or a worker thread its exit would wait for)
// when a client never opens its side. stdout and stderr are handed to runc,
// whose process inherits them; stdin is copied from its FIFO into a pipe, so
// that CloseIO can end it (holding both ends, the FIFO itself never ends).
// With a terminal, runc hands the pty master over instead (console.ts): the
// FIFOs are copied to and from it.
import type { ChildProcess, StdioOptions } from "node:child_process";
import { closeSync, constants, openSync } from "node:fs";
import { Socket } from "node:net";
import type { Console } from "./console.js";

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
  #console: Console | undefined;

  constructor(readonly paths: StdioPaths) {
    this.#out = paths.stdout ? openFifo(paths.stdout) : undefined;
    this.#err = paths.stderr ? (paths.stderr === paths.stdout ? this.#out : openFifo(paths.stderr)) : undefined;
  }

  /** The stdio for the runc command whose process inherits it (nothing when it gets a terminal). */
  stdio(terminal = false): StdioOptions {
    if (terminal) return "ignore";
    return [this.paths.stdin ? "pipe" : "ignore", this.#out ?? "ignore", this.#err ?? "ignore"];
  }

  /** With a terminal: the pty master runc sent, copied to stdout and from stdin. */
  attachConsole(console: Console): void {
    this.#console = console;
    const stream = console.stream;
    // EIO once the last process holding the terminal is gone: the end of its output.
    stream.on("error", () => stream.destroy());
    if (this.#out !== undefined) {
      const out = new Socket({ fd: this.#out, readable: false, writable: true });
      if (this.#err !== this.#out && this.#err !== undefined) closeSync(this.#err);
      this.#out = undefined;
      this.#err = undefined;
      out.on("error", () => undefined); // nobody reads the output any more
      stream.on("close", () => out.end());
      stream.pipe(out, { end: false });
    }
    if (this.paths.stdin) {
      this.#stdinSource = new Socket({ fd: openFifo(this.paths.stdin), readable: true, writable: false });
      this.#stdinSource.on("error", () => undefined);
      this.#stdinSource.pipe(stream, { end: false });
    }
    stream.resume();
  }

  /** ResizePty; false when the process has no terminal. */
  async resize(width: number, height: number): Promise<boolean> {
    if (this.#console === undefined) return false;
    await this.#console.resize(width, height);
    return true;
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

  /** CloseIO: the process sees EOF on stdin (with a terminal, its input stops). */
  closeStdin(): void {
    this.#stdinSource?.destroy();
    this.#stdinSource = undefined;
    this.#stdinPipe?.end();
  }
}
