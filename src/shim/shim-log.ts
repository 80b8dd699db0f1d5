// The shim's log: containerd makes a fifo named "log" in the bundle and reads
// it before it runs the shim (openShimLog), copying what arrives to its own
// log. The long-lived server opens the write side without blocking: with no
// reader (a shim run by hand) it logs to stderr instead.
import { closeSync, constants, openSync, write } from "node:fs";

/** One log line, written as Go's logrus text format writes it (time, level, msg). */
export type LogLevel = "debug" | "info" | "warning" | "error";

/** The shim's logger. */
export class ShimLog {
  readonly #fd: number;
  readonly #own: boolean;

  private constructor(
    fd: number,
    own: boolean,
    readonly debugEnabled: boolean,
  ) {
    this.#fd = fd;
    this.#own = own;
  }

  /** Opens `path` (the bundle's "log" fifo) for writing, or falls back to stderr. */
  static open(path: string, debug: boolean): ShimLog {
    try {
      return new ShimLog(openSync(path, constants.O_WRONLY | constants.O_NONBLOCK), true, debug);
    } catch {
      return new ShimLog(2, false, debug);
    }
  }

  /** Writes one line, as logrus's text format does; debug lines only with -debug. */
  log(level: LogLevel, msg: string, fields: Record<string, string | number> = {}): void {
    if (level === "debug" && !this.debugEnabled) return;
    const extra = Object.entries(fields).map(([k, v]) => ` ${k}=${JSON.stringify(String(v))}`);
    const line = `time="${new Date().toISOString()}" level=${level} msg=${JSON.stringify(msg)}${extra.join("")}\n`;
    // Best effort: a full pipe or a reader gone loses the line, never the shim.
    write(this.#fd, line, () => undefined);
  }

  /** Closes the fifo (not stderr). */
  close(): void {
    if (this.#own) closeSync(this.#fd);
  }
}
