import { basename } from "node:path";
import { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { ContainerUpdate } from "../../gen/nri/pkg/api/v1alpha1/api_pb.js";
import {
  createRuntimeClient,
  registerPluginServer,
  type RuntimeClient,
} from "../../gen/nri/pkg/api/v1alpha1/api_ttrpc.js";
import { dial } from "../address.js";
import { createClient, type Client } from "../client.js";
import { Code } from "../code.js";
import { createServer, type Server } from "../server.js";
import { TtrpcError } from "../ttrpc-error.js";
import { handledEvents } from "./event-mask.js";
import { createMultiplexer, type Multiplexer } from "./multiplexer.js";
import { PLUGIN_SERVICE_CONN, RUNTIME_SERVICE_CONN } from "./mux-frame.js";
import type { ContainerEvictionInit, ContainerUpdateInit, NriContext, PluginHandlers } from "./plugin-handlers.js";
import { pluginService } from "./plugin-service.js";

/** Where the runtime listens by default (containerd, CRI-O). */
export const DEFAULT_SOCKET_PATH = "/var/run/nri/nri.sock";
/** Environment of a plugin the runtime launched: the inherited socket's fd. */
export const PLUGIN_SOCKET_ENV = "NRI_PLUGIN_SOCKET";
/** Environment of a plugin the runtime launched: the name it was launched under. */
export const PLUGIN_NAME_ENV = "NRI_PLUGIN_NAME";
/** Environment of a plugin the runtime launched: its two-digit index. */
export const PLUGIN_IDX_ENV = "NRI_PLUGIN_IDX";
/** NRI's default time to register (and be configured): 5 s. */
export const DEFAULT_REGISTRATION_TIMEOUT_MS = 5000;
/** NRI's default time for each request: 2 s. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 2000;

/** Options of {@link createStub}. */
export interface StubOptions {
  /** Plugin name; default NRI_PLUGIN_NAME, else the script's name after "NN-". */
  name?: string;
  /** Two-digit index ordering plugins; default NRI_PLUGIN_IDX, else the script's "NN-" prefix. */
  idx?: string;
  /** The runtime's socket, when neither `connect` nor NRI_PLUGIN_SOCKET is given. Default /var/run/nri/nri.sock. */
  socketPath?: string;
  /** Opens the connection to the runtime yourself (an in-memory pair, a socket you dialled). */
  connect?: () => Duplex | Promise<Duplex>;
  /** Where NRI_PLUGIN_* are read; default process.env. */
  env?: Record<string, string | undefined>;
  /** Time for RegisterPlugin to be answered and Configure to arrive. Default 5000 ms. */
  registrationTimeoutMs?: number;
  /** Time a handler has before the stub answers DEADLINE_EXCEEDED. Default 2000 ms, or what Configure says. */
  requestTimeoutMs?: number;
  /**
   * When the runtime goes away: "exit" (default, as Go's stub) ends `run()`;
   * "reconnect" dials again every `reconnectDelayMs` until it is back.
   * A plugin on an inherited socket cannot reconnect and always exits.
   */
  onRuntimeGone?: "exit" | "reconnect";
  /** Delay between reconnection attempts. Default 1000 ms. */
  reconnectDelayMs?: number;
  /** Called with each connection's end ("shutdown" after a Shutdown call, else "gone"). */
  onDisconnect?: (reason: "shutdown" | "gone", error: Error | undefined) => void;
}

/** A running NRI plugin. */
export interface Stub {
  readonly name: string;
  readonly idx: string;
  /** The events the handlers subscribe to (before Configure narrows them). */
  readonly events: number;
  /** Connects, registers and waits for Configure. Rejects with a TtrpcError if any of it fails or times out. */
  start(): Promise<void>;
  /**
   * Starts (unless started) and resolves when the plugin is done: the runtime
   * went away (and `onRuntimeGone` is "exit") or `stop()` was called.
   */
  run(): Promise<void>;
  /** Closes the connection and ends `run()`. */
  stop(): Promise<void>;
  /** Asks the runtime to update (or evict) containers; resolves with the updates that failed. */
  updateContainers(
    update: ContainerUpdateInit[],
    options?: { evict?: ContainerEvictionInit[]; timeoutMs?: number },
  ): Promise<ContainerUpdate[]>;
}

/**
 * Creates an NRI plugin stub around `handlers`. Throws if no event handler is
 * implemented or the identity is invalid.
 *
 * @example
 * ```ts
 * import { createStub } from "ttrpc-es/nri";
 *
 * const stub = createStub(
 *   {
 *     createContainer(pod, container) {
 *       return { adjust: { env: [{ key: "POD_NAMESPACE", value: pod.namespace }] } };
 *     },
 *   },
 *   { name: "annotate", idx: "10" },
 * );
 * await stub.run(); // until the runtime goes away
 * ```
 */
export function createStub(handlers: PluginHandlers, options: StubOptions = {}): Stub {
  return new NriStub(handlers, options);
}

/** Name and index from options, the environment, or a script named "NN-name" (as Go's stub does). */
function identity(options: StubOptions, env: Record<string, string | undefined>): { name: string; idx: string } {
  let name = options.name ?? env[PLUGIN_NAME_ENV] ?? "";
  let idx = options.idx ?? env[PLUGIN_IDX_ENV] ?? "";
  if (name === "" || idx === "") {
    const script = basename(process.argv[1] ?? "").replace(/\.[cm]?js$/, "");
    const m = /^(\d\d)-(.+)$/.exec(script);
    if (idx === "" && m) idx = m[1]!;
    if (name === "") name = m ? m[2]! : script;
  }
  if (!/^\d\d$/.test(idx)) {
    throw new TtrpcError(`nri: plugin index must be two digits (00-99), got "${idx}"`, Code.InvalidArgument);
  }
  if (name === "") throw new TtrpcError("nri: plugin name is empty", Code.InvalidArgument);
  return { name, idx };
}

function timeoutError(what: string, ms: number): TtrpcError {
  return new TtrpcError(`nri: ${what} within ${ms} ms`, Code.DeadlineExceeded);
}

/** Rejects with `error()` after `ms` (cleared when `p` settles). */
function within<T>(p: Promise<T>, ms: number, error: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(error()), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

// One connection to the runtime: the mux, our Plugin server on id 1 and our
// Runtime client on id 2.
interface Session {
  mux: Multiplexer;
  server: Server;
  client: Client;
  runtime: RuntimeClient;
  shutdown: boolean;
  ended: Promise<"shutdown" | "gone">;
}

class NriStub implements Stub {
  readonly name: string;
  readonly idx: string;
  readonly events: number;
  readonly #handlers: PluginHandlers;
  readonly #options: StubOptions;
  readonly #env: Record<string, string | undefined>;
  #requestTimeoutMs: number;
  #session: Session | undefined;
  #started = false;
  #stopped = false;
  #stopWaiters: (() => void)[] = [];
  #reconnectTimer: NodeJS.Timeout | undefined;

  constructor(handlers: PluginHandlers, options: StubOptions) {
    this.#handlers = handlers;
    this.#options = options;
    this.#env = options.env ?? process.env;
    ({ name: this.name, idx: this.idx } = identity(options, this.#env));
    this.events = handledEvents(handlers);
    if (this.events === 0) {
      throw new TtrpcError(
        "nri: the plugin implements no event handler (runPodSandbox, createContainer, ...)",
        Code.InvalidArgument,
      );
    }
    this.#requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  }

  async start(): Promise<void> {
    if (this.#started) throw new TtrpcError("nri: stub already started", Code.FailedPrecondition);
    this.#started = true;
    this.#session = await this.#connect();
  }

  async run(): Promise<void> {
    if (!this.#started) await this.start();
    for (;;) {
      const session = this.#session;
      if (session === undefined || this.#stopped) return;
      const reason = await Promise.race([session.ended, this.#whenStopped()]);
      if (reason === undefined || this.#stopped) return;
      if (!this.#canReconnect()) return;
      this.#session = await this.#reconnect();
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#reconnectTimer);
    for (const w of this.#stopWaiters.splice(0)) w();
    const s = this.#session;
    if (s !== undefined) await this.#close(s);
  }

  async updateContainers(
    update: ContainerUpdateInit[],
    options: { evict?: ContainerEvictionInit[]; timeoutMs?: number } = {},
  ): Promise<ContainerUpdate[]> {
    const s = this.#session;
    if (s === undefined || s.mux.closed) throw new TtrpcError("nri: not connected to the runtime", Code.Unavailable);
    const reply = await s.runtime.updateContainers(
      { update, evict: options.evict ?? [] },
      { timeoutMs: options.timeoutMs ?? this.#requestTimeoutMs },
    );
    return reply.failed;
  }

  #whenStopped(): Promise<undefined> {
    return new Promise((resolve) => this.#stopWaiters.push(() => resolve(undefined)));
  }

  #canReconnect(): boolean {
    return this.#options.onRuntimeGone === "reconnect" && this.#env[PLUGIN_SOCKET_ENV] === undefined;
  }

  // Dials until the runtime is back (or stop()); each attempt is a whole start.
  async #reconnect(): Promise<Session | undefined> {
    const delay = this.#options.reconnectDelayMs ?? 1000;
    while (!this.#stopped) {
      await new Promise<void>((resolve) => {
        const done = () => {
          this.#stopWaiters = this.#stopWaiters.filter((w) => w !== done);
          resolve();
        };
        this.#reconnectTimer = setTimeout(done, delay);
        this.#stopWaiters.push(done);
      });
      if (this.#stopped) return undefined;
      try {
        return await this.#connect();
      } catch {
        // not back yet: try again after the delay
      }
    }
    return undefined;
  }

  async #open(): Promise<Duplex> {
    if (this.#options.connect) return this.#options.connect();
    const fd = this.#env[PLUGIN_SOCKET_ENV];
    if (fd !== undefined && fd !== "") {
      if (!/^\d+$/.test(fd)) {
        throw new TtrpcError(`nri: invalid socket in environment (${PLUGIN_SOCKET_ENV}="${fd}")`, Code.InvalidArgument);
      }
      return new Socket({ fd: Number(fd), readable: true, writable: true });
    }
    return dial(`unix:${this.#options.socketPath ?? DEFAULT_SOCKET_PATH}`);
  }

  async #connect(): Promise<Session> {
    const registrationMs = this.#options.registrationTimeoutMs ?? DEFAULT_REGISTRATION_TIMEOUT_MS;
    const socket = await this.#open();
    const mux = createMultiplexer(socket);
    const server = createServer();
    let configuredNow: { resolve: () => void; reject: (e: Error) => void } | undefined;
    const configured = new Promise<void>((resolve, reject) => {
      configuredNow = { resolve, reject };
    });
    configured.catch(() => {}); // awaited below, after RegisterPlugin
    registerPluginServer(
      server,
      pluginService(this.#handlers, {
        events: this.events,
        call: (what, signal, fn) => this.#call(what, signal, fn),
        useRequestTimeout: (ms) => {
          if (this.#options.requestTimeoutMs === undefined) this.#requestTimeoutMs = ms;
        },
        configured: (error) => (error === undefined ? configuredNow?.resolve() : configuredNow?.reject(error)),
        shuttingDown: () => {
          session.shutdown = true;
        },
      }),
    );
    server.serveConnection(mux.open(PLUGIN_SERVICE_CONN));
    const client = createClient(mux.open(RUNTIME_SERVICE_CONN));
    const session: Session = {
      mux,
      server,
      client,
      runtime: createRuntimeClient(client),
      shutdown: false,
      ended: mux.done.then(async (error) => {
        await this.#close(session);
        const reason = session.shutdown ? "shutdown" : "gone";
        this.#options.onDisconnect?.(reason, error);
        return reason;
      }),
    };
    this.#session = session;
    const gone = mux.done.then((e) => {
      throw new TtrpcError("nri: the runtime closed the connection before configuring the plugin", Code.Unavailable, {
        cause: e,
      });
    });
    try {
      await session.runtime
        .registerPlugin({ pluginName: this.name, pluginIdx: this.idx }, { timeoutMs: registrationMs })
        .catch((e: unknown) => {
          // The call's own deadline: say which step timed out.
          const err = TtrpcError.from(e);
          throw err.code === Code.DeadlineExceeded
            ? timeoutError("the runtime did not answer RegisterPlugin", registrationMs)
            : err;
        });
      await within(Promise.race([configured, gone]), registrationMs, () =>
        timeoutError("the runtime did not send Configure", registrationMs),
      );
    } catch (e) {
      await this.#close(session);
      throw TtrpcError.from(e);
    } finally {
      gone.catch(() => {});
    }
    return session;
  }

  async #close(s: Session): Promise<void> {
    s.client.close();
    s.mux.close();
    await s.server.close();
  }

  // Runs a handler under the request timeout; a throw or a timeout becomes the error status.
  async #call<T>(what: string, outer: AbortSignal, fn: (ctx: NriContext) => T | Promise<T>): Promise<T> {
    const ms = this.#requestTimeoutMs;
    const controller = new AbortController();
    const onAbort = () => controller.abort(outer.reason);
    outer.addEventListener("abort", onAbort, { once: true });
    try {
      return await within(
        Promise.resolve().then(() => fn({ signal: controller.signal })),
        ms,
        () => {
          const err = timeoutError(`handler ${what} did not finish`, ms);
          controller.abort(err);
          return err;
        },
      );
    } finally {
      outer.removeEventListener("abort", onAbort);
    }
  }
}
