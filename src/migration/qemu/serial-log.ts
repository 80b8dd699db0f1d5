// A QEMU serial console written to a file (`-serial file:PATH`), read as it
// grows. A file rather than a socket: QEMU drops console output while no one
// is connected to a socket chardev, and a log that survives is what shows a
// guest went on (tick N on the source, N+1 in the destination's file).
import { open, type FileHandle } from "node:fs/promises";

const POLL_MS = 100;
const KEEP_LINES = 2000;

/** The lines a guest printed on its serial console, followed as they arrive. */
export class SerialLog {
  readonly path: string;
  /** The last lines (up to 2000), oldest first. */
  readonly lines: string[] = [];
  readonly #listeners = new Set<(line: string) => void>();
  #offset = 0;
  #partial = "";
  #file: FileHandle | undefined;
  #timer: NodeJS.Timeout | undefined;
  #reading = false;
  #closed = false;
  #ended: Error | undefined;
  readonly #endWaiters = new Set<(error: Error) => void>();

  constructor(path: string) {
    this.path = path;
    // QEMU appends; there is no portable change notification for a file another process writes, so it is polled.
    this.#timer = setInterval(() => void this.#read(), POLL_MS);
  }

  /** Calls `listener` with every line from now on; returns a function that stops it. */
  onLine(listener: (line: string) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Resolves with the first line (already printed or to come) that `match`
   * accepts; rejects when `signal` aborts or the console has ended ({@link SerialLog.end}).
   */
  waitFor(match: (line: string) => boolean, signal?: AbortSignal): Promise<string> {
    const seen = this.lines.find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return this.nextLine(match, signal);
  }

  /** Resolves with the first line from now on that `match` accepts; rejects as {@link SerialLog.waitFor} does. */
  nextLine(match: (line: string) => boolean, signal?: AbortSignal): Promise<string> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      if (this.#ended !== undefined) return reject(this.#ended);
      const finish = (settle: () => void) => {
        stop();
        this.#endWaiters.delete(onEnd);
        signal?.removeEventListener("abort", onAbort);
        settle();
      };
      const onAbort = () => finish(() => reject(signal?.reason));
      const onEnd = (error: Error) => finish(() => reject(error));
      const stop = this.onLine((line) => {
        if (match(line)) finish(() => resolve(line));
      });
      this.#endWaiters.add(onEnd);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /**
   * No line will come any more (the guest's QEMU exited): what is in the file
   * is read first, then every wait still pending, and every later one a line
   * already read does not satisfy, rejects with `error`.
   */
  async end(error: Error): Promise<void> {
    if (this.#ended !== undefined) return;
    await this.#read();
    this.#ended = error;
    for (const w of [...this.#endWaiters]) w(error);
  }

  async #read(): Promise<void> {
    if (this.#reading || this.#closed) return;
    this.#reading = true;
    try {
      this.#file ??= await open(this.path, "r");
      const buf = Buffer.alloc(64 * 1024);
      for (;;) {
        const { bytesRead } = await this.#file.read(buf, 0, buf.length, this.#offset);
        if (bytesRead === 0 || this.#closed) break;
        this.#offset += bytesRead;
        this.#take(buf.toString("latin1", 0, bytesRead));
      }
    } catch {
      // not created yet: QEMU opens it at start-up
    } finally {
      this.#reading = false;
      if (this.#closed) await this.#closeFile();
    }
  }

  #take(text: string): void {
    const parts = (this.#partial + text).split(/\r?\n/);
    this.#partial = parts.pop() ?? "";
    for (const line of parts) {
      this.lines.push(line);
      if (this.lines.length > KEEP_LINES) this.lines.shift();
      for (const l of [...this.#listeners]) l(line);
    }
  }

  async #closeFile(): Promise<void> {
    const f = this.#file;
    this.#file = undefined;
    await f?.close().catch(() => undefined);
  }

  /** Reads what is left now, then stops following. */
  async flush(): Promise<void> {
    await this.#read();
  }

  /** Stops following the file and closes it. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
    if (!this.#reading) void this.#closeFile();
  }
}
