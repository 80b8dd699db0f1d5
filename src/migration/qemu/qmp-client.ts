/**
 * A QMP (QEMU Machine Protocol) client: JSON objects, one per line, on QEMU's
 * monitor socket. The server greets (`{"QMP": {...}}`); the client leaves
 * negotiation mode with `qmp_capabilities`; then every command carries an
 * `id` its answer echoes (`return` or `error`), and asynchronous `event`s
 * arrive in between. One client per monitor socket: QEMU serves one
 * connection at a time on a `-qmp` socket, and descriptors passed with
 * `getfd` belong to the connection that sent them.
 *
 * No npm QMP library was taken: the few on the registry are unmaintained or
 * callback-based without fd passing, and the protocol is this small.
 *
 * @module
 */
import { connect as netConnect, type Socket } from "node:net";
import { sendWithFd } from "../../fd-passing.js";

/** QEMU's answer to a command was an `error`: `errorClass` is QMP's `class` (e.g. "GenericError"). */
export class QmpCommandError extends Error {
  override readonly name = "QmpCommandError";
  constructor(
    readonly command: string,
    readonly errorClass: string,
    readonly description: string,
  ) {
    super(`QMP ${command}: ${errorClass}: ${description}`);
  }
}

/** The monitor connection closed (QEMU exited, or the client was closed) before an answer came. */
export class QmpClosedError extends Error {
  override readonly name = "QmpClosedError";
}

/** The server broke the protocol (a line that is not a JSON object, an unexpected greeting). */
export class QmpProtocolError extends Error {
  override readonly name = "QmpProtocolError";
}

/** An asynchronous QMP event. `timestampMs` is QEMU's own clock, ms since the Unix epoch. */
export interface QmpEvent {
  readonly event: string;
  readonly data: Record<string, unknown>;
  readonly timestampMs: number;
}

/** The greeting's `version.qemu`. */
export interface QemuVersion {
  readonly major: number;
  readonly minor: number;
  readonly micro: number;
}

interface Pending {
  readonly command: string;
  resolve(value: unknown): void;
  reject(error: Error): void;
}

type Message = Record<string, unknown>;

/** Options of {@link QmpClient.connect}. */
export interface QmpConnectOptions {
  readonly signal?: AbortSignal;
}

/**
 * One QMP connection to one QEMU: commands with ids, the event stream, and
 * descriptors passed with a command. Created by {@link QmpClient.connect}.
 */
export class QmpClient {
  /** The QEMU version from the greeting. */
  readonly version: QemuVersion;
  readonly #socket: Socket;
  readonly #pending = new Map<number, Pending>();
  readonly #listeners = new Set<(e: QmpEvent) => void>();
  readonly #closeWaiters = new Set<(error: Error) => void>();
  #nextId = 1;
  #buffered = "";
  #closedError: Error | undefined;
  #writing: Promise<void> = Promise.resolve();
  /** Settles when the connection is gone. */
  readonly closed: Promise<void>;

  private constructor(socket: Socket, version: QemuVersion) {
    this.#socket = socket;
    this.version = version;
    this.closed = new Promise((resolve) => socket.once("close", () => resolve()));
    socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    socket.on("error", (e) => this.#fail(new QmpClosedError(`QMP connection failed: ${e.message}`, { cause: e })));
    socket.on("close", () => this.#fail(new QmpClosedError("QMP connection closed")));
    socket.resume();
  }

  /**
   * Connects to a monitor socket, reads the greeting and leaves negotiation
   * mode. Rejects with {@link QmpClosedError} when the socket refuses or
   * closes first, {@link QmpProtocolError} on a bad greeting.
   */
  static async connect(path: string, options: QmpConnectOptions = {}): Promise<QmpClient> {
    const socket = netConnect(path);
    const abort = () => socket.destroy(options.signal?.reason instanceof Error ? options.signal.reason : undefined);
    options.signal?.addEventListener("abort", abort, { once: true });
    try {
      const greeting = await readGreeting(socket);
      const client = new QmpClient(socket, greeting);
      await client.execute("qmp_capabilities");
      return client;
    } catch (e) {
      socket.destroy();
      throw e;
    } finally {
      options.signal?.removeEventListener("abort", abort);
    }
  }

  /** Whether the connection is gone. */
  get isClosed(): boolean {
    return this.#closedError !== undefined;
  }

  /**
   * Runs a command and resolves with its `return`. With `fd`, the
   * descriptor travels with the command's bytes (SCM_RIGHTS), as `getfd`
   * and `add-fd` expect.
   */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, fd?: number): Promise<T> {
    if (this.#closedError !== undefined) return Promise.reject(this.#closedError);
    const id = this.#nextId++;
    const line = Buffer.from(`${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id })}\n`);
    const answer = new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject });
    });
    // Writes are serialised so a descriptor's bytes never overtake queued ones.
    this.#writing = this.#writing
      .then(() => this.#write(line, fd))
      .catch((e: unknown) => {
        const p = this.#pending.get(id);
        this.#pending.delete(id);
        p?.reject(e instanceof Error ? e : new Error(String(e)));
      });
    return answer;
  }

  async #write(line: Buffer, fd: number | undefined): Promise<void> {
    if (this.#closedError !== undefined) throw this.#closedError;
    if (fd === undefined) {
      this.#socket.write(line);
      return;
    }
    if (this.#socket.writableLength > 0) await new Promise((r) => this.#socket.once("drain", r));
    await sendWithFd(this.#socket, line, fd);
  }

  /** Calls `listener` with every event from now on; returns a function that stops it. */
  onEvent(listener: (e: QmpEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Resolves with the first event from now on that `match` accepts; rejects
   * when the connection closes first or `signal` aborts.
   */
  nextEvent(match: (e: QmpEvent) => boolean, signal?: AbortSignal): Promise<QmpEvent> {
    return new Promise((resolve, reject) => {
      if (this.#closedError !== undefined) return reject(this.#closedError);
      if (signal?.aborted) return reject(abortReason(signal));
      const finish = (settle: () => void) => {
        stop();
        this.#closeWaiters.delete(onClose);
        signal?.removeEventListener("abort", onAbort);
        settle();
      };
      const stop = this.onEvent((e) => {
        if (match(e)) finish(() => resolve(e));
      });
      const onClose = (error: Error) => finish(() => reject(error));
      const onAbort = () => finish(() => reject(abortReason(signal!)));
      this.#closeWaiters.add(onClose);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Closes the connection; pending commands reject with {@link QmpClosedError}. */
  close(): void {
    this.#socket.destroy();
  }

  /** Closes the connection and waits until it is gone, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.closed;
  }

  #onData(chunk: Buffer): void {
    this.#buffered += chunk.toString("utf8");
    let nl = this.#buffered.indexOf("\n");
    while (nl >= 0) {
      const line = this.#buffered.slice(0, nl).trim();
      this.#buffered = this.#buffered.slice(nl + 1);
      if (line !== "") this.#onMessage(line);
      nl = this.#buffered.indexOf("\n");
    }
  }

  #onMessage(line: string): void {
    const m = parseObject(line);
    if (m === undefined) {
      this.#fail(new QmpProtocolError(`QMP sent a line that is not a JSON object: ${line.slice(0, 200)}`));
      this.#socket.destroy();
      return;
    }
    if (typeof m.event === "string") {
      this.#emit(m);
      return;
    }
    const id = m.id;
    const p = typeof id === "number" ? this.#pending.get(id) : undefined;
    if (p === undefined) return; // an answer to nobody (QEMU answers id-less errors this way)
    this.#pending.delete(id as number);
    const error = m.error as { class?: unknown; desc?: unknown } | undefined;
    if (error !== undefined) p.reject(new QmpCommandError(p.command, String(error.class), String(error.desc)));
    else p.resolve(m.return);
  }

  #emit(m: Message): void {
    const ts = (m.timestamp ?? {}) as { seconds?: number; microseconds?: number };
    const e: QmpEvent = {
      event: m.event as string,
      data: (m.data ?? {}) as Record<string, unknown>,
      timestampMs: (ts.seconds ?? 0) * 1000 + (ts.microseconds ?? 0) / 1000,
    };
    for (const l of [...this.#listeners]) {
      try {
        l(e);
      } catch {
        // a listener's bug must not stop the stream
      }
    }
  }

  #fail(error: Error): void {
    if (this.#closedError !== undefined) return;
    this.#closedError = error;
    for (const p of this.#pending.values()) p.reject(error);
    this.#pending.clear();
    for (const w of [...this.#closeWaiters]) w(error);
  }
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error("aborted");
}

function parseObject(line: string): Message | undefined {
  try {
    const v: unknown = JSON.parse(line);
    return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Message) : undefined;
  } catch {
    return undefined;
  }
}

/** Reads the first line and checks it is QMP's greeting. */
function readGreeting(socket: Socket): Promise<QemuVersion> {
  return new Promise((resolve, reject) => {
    let text = "";
    const cleanup = () => {
      // Paused until the client listens, so nothing after the greeting is lost.
      socket.pause();
      socket.off("data", onData);
      socket.off("error", onError);
      socket.off("close", onClose);
    };
    const onError = (e: Error) => {
      cleanup();
      reject(new QmpClosedError(`cannot connect to QMP: ${e.message}`, { cause: e }));
    };
    const onClose = () => {
      cleanup();
      reject(new QmpClosedError("QMP closed before its greeting"));
    };
    const onData = (chunk: Buffer) => {
      text += chunk.toString("utf8");
      const nl = text.indexOf("\n");
      if (nl < 0) return;
      cleanup();
      const rest = text.slice(nl + 1);
      if (rest.trim() !== "") socket.unshift(Buffer.from(rest));
      const m = parseObject(text.slice(0, nl));
      const qmp = m?.QMP as { version?: { qemu?: QemuVersion } } | undefined;
      const v = qmp?.version?.qemu;
      if (v === undefined || typeof v.major !== "number")
        return reject(new QmpProtocolError(`not a QMP greeting: ${text.slice(0, nl).slice(0, 200)}`));
      resolve({ major: v.major, minor: v.minor, micro: v.micro });
    };
    socket.on("data", onData);
    socket.once("error", onError);
    socket.once("close", onClose);
  });
}
