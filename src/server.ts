import { Server as NetServer, Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { DescService } from "@bufbuild/protobuf";
import { Code } from "./code.js";
import { LongTimer } from "./deadline.js";
import { adoptForDirectReads, DirectReads } from "./direct-reads.js";
import { ErrorReason } from "./error-reason.js";
import type { Interceptor } from "./interceptor.js";
import { listenerOf, listenOnAddress, stopListening, type Listener } from "./listen.js";
import { ServerConnection, type ConnectionHost } from "./server-connection.js";
import { createDispatch, type Dispatch } from "./server-dispatch.js";
import type { PeerInfo, ServiceImpl } from "./service-impl.js";
import { peerCredentials } from "./peer-credentials.js";
import { ServiceRegistry } from "./service-registry.js";
import { type ConnectionSettings, connectionSettings, SERVER_CONNECTIONS } from "./connection-settings.js";
import { shutdownError, TtrpcError } from "./ttrpc-error.js";

/** Options of a server. */
export interface ServerOptions {
  /** Largest payload accepted or sent, in bytes. Default 4 MiB, as Go and Rust. */
  maxMessageSize?: number;
  /** Applied to every call, the first outermost. */
  interceptors?: Interceptor[];
  /** Calls (of any shape) one connection may have open; past it RESOURCE_EXHAUSTED. Default 10,000. */
  maxConcurrentStreams?: number;
  /** Messages a client stream may queue unread before the grace period starts. Default 64. */
  streamBufferSize?: number;
  /** How long an over-full stream waits for its handler before it fails. Default 1000 ms. */
  streamFullGraceMs?: number;
  /**
   * Checks each new connection before any byte is read; throwing refuses it
   * (the socket is closed, nothing is sent), like Go's Handshaker.
   */
  authorize?: (socket: Duplex, peer: PeerInfo) => void | Promise<void>;
  /** Told about connections refused or ended on a protocol error; default: silent. */
  onConnectionError?: (error: TtrpcError, peer: PeerInfo) => void;
}

/** Options of {@link Server.listen}. */
export interface ListenOptions {
  /** File mode of a unix socket the server creates. Default 0o600: only the owner may connect. */
  socketMode?: number;
  /**
   * Length of the accept queue. Default: the kernel's `net.core.somaxconn`
   * (as Go's net package asks for), else Node's 511 where the kernel does not
   * say. A burst of connections beyond it is refused (EAGAIN on unix sockets).
   */
  backlog?: number;
}

/** A ttrpc server. */
export interface Server {
  /** Registers a service under its proto full name (or `name`); duplicate names are an error. */
  register<S extends DescService>(service: S, impl: Partial<ServiceImpl<S>>, options?: { name?: string }): this;
  /**
   * Listens on an address (see `parseAddress`) or a `net.Server` and resolves
   * once listening, with the canonical address. A stale unix socket file (no
   * server behind it) is replaced; a live one is EADDRINUSE; a file that is
   * not a socket is never removed.
   */
  listen(address: string | NetServer, options?: ListenOptions): Promise<string>;
  /** Serves one connection on any Duplex (vsock, an in-memory pair, a socket you accepted). */
  serveConnection(socket: Duplex, peer?: Partial<PeerInfo>): void;
  /**
   * Graceful shutdown: stops listening, refuses new calls with UNAVAILABLE,
   * lets calls in flight finish, then closes each connection. Calls still
   * running after `timeoutMs` are cancelled and their connections closed.
   */
  shutdown(options?: { timeoutMs?: number }): Promise<void>;
  /** Immediate close: stops listening and closes every connection; handlers see their signal abort. */
  close(): Promise<void>;
  /** `await using server = createServer()`: {@link Server.close} at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void>;
  /** Open connections. */
  readonly connectionCount: number;
}

// Endings that are no news to onConnectionError: either side closed, or the server stopped.
const NORMAL_ENDINGS: ReadonlySet<ErrorReason | undefined> = new Set([
  ErrorReason.PeerClosed,
  ErrorReason.LocalClosed,
  ErrorReason.ServerShutdown,
]);

/**
 * What a server knows of a peer, built in this one place for every
 * connection (accepted by a listener or handed to serveConnection).
 */
function peerInfo(socket: Duplex, peer: Partial<PeerInfo>): PeerInfo {
  return {
    localAddress: peer.localAddress ?? "",
    remoteAddress: peer.remoteAddress ?? (socket instanceof Socket ? socket.remoteAddress : undefined),
    // A getter: koffi is loaded only by a server that asks.
    get credentials() {
      return peerCredentials(socket);
    },
  };
}

// The server and its lifecycle: services, listeners, connections, shutdown.
class ServerImpl implements Server, ConnectionHost {
  readonly registry = new ServiceRegistry();
  readonly connections = new Set<ServerConnection>();
  readonly #listeners: Listener[] = [];
  readonly maxConcurrentStreams: number;
  readonly settings: ConnectionSettings;
  readonly dispatch: Dispatch;
  closing = false;
  #idleWaiters: (() => void)[] = [];

  constructor(readonly options: ServerOptions) {
    this.maxConcurrentStreams = options.maxConcurrentStreams ?? 10_000;
    this.settings = connectionSettings(options, SERVER_CONNECTIONS);
    this.dispatch = createDispatch(options.interceptors);
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  register<S extends DescService>(service: S, impl: Partial<ServiceImpl<S>>, options: { name?: string } = {}): this {
    this.registry.register(service, impl, options.name ?? service.typeName);
    return this;
  }

  serveConnection(socket: Duplex, peer: Partial<PeerInfo> = {}): void {
    this.#serve(socket, peer);
  }

  #serve(socket: Duplex, peer: Partial<PeerInfo>): void {
    const info = peerInfo(socket, peer);
    if (this.closing) {
      socket.destroy();
      return;
    }
    const authorize = this.options.authorize;
    if (authorize === undefined) {
      this.connections.add(new ServerConnection(this, socket, info));
      return;
    }
    // Nothing is read until the peer is accepted.
    socket.pause();
    socket.on("error", () => {}); // errors before the channel takes over end in destroy below
    Promise.resolve()
      .then(() => authorize(socket, info))
      .then(
        () => {
          if (this.closing || socket.destroyed) {
            socket.destroy();
            return;
          }
          this.connections.add(new ServerConnection(this, socket, info));
          socket.resume();
        },
        (e) => {
          socket.destroy();
          this.options.onConnectionError?.(TtrpcError.from(e, Code.PermissionDenied), info);
        },
      );
  }

  connectionClosed(conn: ServerConnection, error: TtrpcError): void {
    this.connections.delete(conn);
    if (this.connections.size === 0) {
      const w = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const f of w) f();
    }
    // A close by either side is no news; a truncated frame or a socket error is.
    if (!NORMAL_ENDINGS.has(error.reason) || error.cause !== undefined)
      this.options.onConnectionError?.(error, conn.peer);
  }

  async listen(address: string | NetServer, options: ListenOptions = {}): Promise<string> {
    if (this.closing) throw shutdownError("ttrpc: server closed");
    const l =
      address instanceof NetServer
        ? listenerOf(address)
        : await listenOnAddress(address, options.socketMode, options.backlog);
    l.server.on("connection", (accepted: Socket) => {
      // Sockets of a server someone else made may be held by them: they stay as they are.
      let socket = accepted;
      if (l.own) {
        // Moved to a socket that reads frames straight into place (see adoptForDirectReads).
        const reads = new DirectReads();
        const adopted = adoptForDirectReads(accepted, reads.onread);
        if (adopted !== undefined) {
          socket = adopted;
          reads.attach(socket);
        } else accepted.resume();
      }
      if (socket.remoteAddress !== undefined) socket.setNoDelay(true);
      this.#serve(socket, { localAddress: l.local });
    });
    this.#listeners.push(l);
    return l.local;
  }

  #stopListening(): Promise<unknown> {
    return Promise.all(this.#listeners.splice(0).map(stopListening));
  }

  async shutdown(options: { timeoutMs?: number } = {}): Promise<void> {
    this.closing = true;
    const stopped = this.#stopListening();
    for (const c of this.connections) {
      c.draining = true;
      if (c.idle) c.close();
    }
    if (this.connections.size > 0) {
      let timer: LongTimer | undefined;
      await new Promise<void>((resolve) => {
        this.#idleWaiters.push(resolve);
        if (options.timeoutMs !== undefined) {
          timer = new LongTimer(() => {
            for (const c of [...this.connections]) c.close(shutdownError("ttrpc: server shut down"));
            resolve();
          }, options.timeoutMs);
        }
      });
      timer?.clear();
    }
    await stopped;
  }

  async close(): Promise<void> {
    this.closing = true;
    const stopped = this.#stopListening();
    for (const c of [...this.connections]) c.close(shutdownError("ttrpc: server closed"));
    await stopped;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Creates a ttrpc server. Register services, then `listen` or `serveConnection`.
 *
 * @example
 * ```ts
 * import { createServer } from "ttrpc-es";
 * import { registerGreeterServer } from "./gen/greeter/v1/greeter_ttrpc.js";
 *
 * await using server = createServer();
 * registerGreeterServer(server, { sayHello: (req) => ({ message: `hello ${req.name}` }) });
 * await server.listen("unix:/tmp/greeter.sock");
 * ```
 */
export function createServer(options: ServerOptions = {}): Server {
  return new ServerImpl(options);
}
