import { chmodSync, lstatSync, mkdtempSync, renameSync, rmdirSync, unlinkSync } from "node:fs";
import { Server as NetServer, Socket } from "node:net";
import { dirname, join } from "node:path";
import type { Duplex } from "node:stream";
import { fromBinary, type DescMessage, type DescMethod, type DescService } from "@bufbuild/protobuf";
import { formatAddress, netOptions, parseAddress, type Address } from "./address.js";
import { Channel } from "./channel.js";
import { Code } from "./code.js";
import { decodeRequest, encodeResponseFrame, type RequestEnvelope, type StatusEnvelope } from "./envelope.js";
import { Flags, MessageType, type Frame } from "./frame.js";
import {
  applyInterceptors,
  type CallFn,
  type Interceptor,
  type StreamRequest,
  type StreamResponse,
  type UnaryRequest,
  type UnaryResponse,
} from "./interceptor.js";
import { encodeMessage, type EncodedMessage } from "./message-codec.js";
import { MessageQueue, streamMaxBytes } from "./message-queue.js";
import { Metadata } from "./metadata.js";
import type { HandlerContext, PeerInfo, ServiceImpl } from "./service-impl.js";
import { OversizedMessageError, TtrpcError } from "./ttrpc-error.js";

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
  /** Open connections. */
  readonly connectionCount: number;
}

interface Registered {
  method: DescMethod;
  impl: (...args: never[]) => unknown;
}

const EMPTY = new Uint8Array(0);
const NORMAL_ENDINGS = new Set(["ttrpc: closed", "ttrpc: server closed", "ttrpc: server shut down"]);
const OK_STATUS: StatusEnvelope = { code: Code.Ok, message: "", details: [] };

function statusOf(e: unknown): StatusEnvelope {
  const err = TtrpcError.from(e);
  return { code: err.code, message: err.rawMessage, details: err.details };
}

// Why a finished call's signal fires. One shared value: building an Error
// (and its stack) for every call was a tenth of the server's time.
const CALL_ENDED = new TtrpcError("ttrpc: call ended", Code.Canceled);

// One call in progress on a server connection.
class ServerCall {
  // Made on first use: most handlers never look at their signal.
  #controller: AbortController | undefined;
  #reason: unknown;
  finished = false;
  timer: NodeJS.Timeout | undefined;
  input: MessageQueue | undefined;
  remoteClosed = false;

  constructor(
    readonly id: number,
    readonly reg: Registered,
  ) {}

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.finished) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  abort(reason: unknown): void {
    this.#reason = reason;
    this.#controller?.abort(reason);
  }
}

// The HandlerContext of one call; `signal` is the call's lazily made one.
class CallContext implements HandlerContext {
  #metadata: Metadata | undefined;

  constructor(
    readonly service: string,
    readonly method: DescMethod,
    private readonly pairs: [string, string][],
    readonly peer: PeerInfo,
    private readonly call: ServerCall,
    private readonly deadline: number | undefined,
  ) {}

  /** The handler found when the Request arrived; interceptors reach it through the context. */
  get impl(): (m: unknown, c: HandlerContext) => unknown {
    return this.call.reg.impl as (m: unknown, c: HandlerContext) => unknown;
  }

  get metadata(): Metadata {
    this.#metadata ??= new Metadata(this.pairs);
    return this.#metadata;
  }

  get fullMethod(): string {
    return `/${this.service}/${this.method.name}`;
  }

  get signal(): AbortSignal {
    return this.call.signal;
  }

  timeoutMs(): number | undefined {
    return this.deadline === undefined ? undefined : Math.max(0, this.deadline - performance.now());
  }
}

class ServerConnection {
  readonly channel: Channel;
  readonly calls = new Map<number, ServerCall>();
  lastStreamId = 0;
  draining = false;

  constructor(
    readonly server: ServerImpl,
    socket: Duplex,
    readonly peer: PeerInfo,
  ) {
    this.channel = new Channel(
      socket,
      {
        frame: (f) => this.#frame(f),
        oversized: (id, _t, _f, length) => this.#oversized(id, length),
        closed: (err) => {
          for (const call of this.calls.values()) this.#end(call, err);
          this.calls.clear();
          server.connectionClosed(this);
          // A close by either side is no news; a truncated frame or a socket error is.
          if (!NORMAL_ENDINGS.has(err.rawMessage) || err.cause !== undefined)
            server.options.onConnectionError?.(err, peer);
        },
      },
      {
        ...(server.maxMessageSize === undefined ? {} : { maxMessageSize: server.maxMessageSize }),
        pauseReadsWhileWriteBlocked: true,
      },
    );
  }

  get idle(): boolean {
    return this.calls.size === 0;
  }

  close(): void {
    this.channel.close();
  }

  #send(buffers: readonly Uint8Array[]): void {
    if (!this.channel.closed) this.channel.write(buffers);
  }

  // A response over the limit is replaced by its RESOURCE_EXHAUSTED status:
  // Go closes the whole connection there; one call failing is enough.
  #respond(id: number, status: StatusEnvelope | undefined, payload: Uint8Array | EncodedMessage = EMPTY): void {
    let frame: Uint8Array[];
    try {
      frame = encodeResponseFrame(id, status, payload, this.channel.maxMessageSize);
    } catch (e) {
      frame = encodeResponseFrame(id, statusOf(e), EMPTY);
    }
    this.#send(frame);
  }

  // Ends a call as seen from the server: nothing more is sent for it, its
  // handler's signal fires, and it stops counting towards the connection.
  #end(call: ServerCall, reason: unknown): void {
    if (call.finished) return;
    call.finished = true;
    if (call.timer !== undefined) clearTimeout(call.timer);
    call.input?.fail(reason);
    call.abort(reason);
    if (this.calls.get(call.id) === call) this.calls.delete(call.id);
    if (this.draining && this.idle) this.close();
  }

  // Fails a call with a status the client will see.
  #fail(call: ServerCall, error: TtrpcError): void {
    if (call.finished) return;
    this.#respond(call.id, statusOf(error));
    this.#end(call, error);
  }

  #oversized(id: number, length: number): void {
    const err = new OversizedMessageError(length, this.channel.maxMessageSize);
    const call = this.calls.get(id);
    if (call !== undefined) this.#fail(call, err);
    else this.#respond(id, statusOf(err));
  }

  #frame(f: Frame): void {
    if (f.type !== MessageType.Request && f.type !== MessageType.Data) return; // future frame types
    if (f.streamId % 2 === 0) {
      this.#respond(
        f.streamId,
        statusOf(new TtrpcError("StreamID must be odd for client initiated streams", Code.InvalidArgument)),
      );
      return;
    }
    if (f.type === MessageType.Data) {
      this.#data(f);
      return;
    }
    if (f.streamId <= this.lastStreamId) {
      this.#respond(
        f.streamId,
        statusOf(new TtrpcError("StreamID cannot be re-used and must increment", Code.InvalidArgument)),
      );
      return;
    }
    this.lastStreamId = f.streamId;
    let req: RequestEnvelope;
    try {
      req = decodeRequest(f.payload);
    } catch (e) {
      this.#respond(
        f.streamId,
        statusOf(new TtrpcError(`unmarshal request error: ${(e as Error).message}`, Code.InvalidArgument)),
      );
      return;
    }
    this.#request(f.streamId, req);
  }

  #data(f: Frame): void {
    const call = this.calls.get(f.streamId);
    if (call === undefined) {
      this.#respond(f.streamId, statusOf(new TtrpcError("StreamID is no longer active", Code.InvalidArgument)));
      return;
    }
    const input = call.input;
    if (input === undefined) {
      this.#fail(call, new TtrpcError("data on a stream whose method takes no client stream", Code.InvalidArgument));
      return;
    }
    if (call.remoteClosed) {
      this.#fail(call, new TtrpcError("StreamID is no longer active", Code.InvalidArgument));
      return;
    }
    const closing = (f.flags & Flags.RemoteClosed) !== 0;
    const noData = (f.flags & Flags.NoData) !== 0;
    if (noData && f.payload.length > 0) {
      this.#fail(call, new TtrpcError("data close message cannot include data", Code.InvalidArgument));
      return;
    }
    if (!noData) input.push(f.payload);
    if (closing) {
      call.remoteClosed = true;
      if (!noData) {
        this.#fail(call, new TtrpcError("data close message cannot include data", Code.InvalidArgument));
        return;
      }
      input.end();
    }
  }

  #request(id: number, req: RequestEnvelope): void {
    if (this.draining || this.server.closing) {
      this.#respond(id, statusOf(new TtrpcError("ttrpc: server shutting down", Code.Unavailable)));
      return;
    }
    if (this.calls.size >= this.server.maxConcurrentStreams) {
      this.#respond(
        id,
        statusOf(
          new TtrpcError(
            `too many concurrent streams on this connection (limit ${this.server.maxConcurrentStreams})`,
            Code.ResourceExhausted,
          ),
        ),
      );
      return;
    }
    const methods = this.server.services.get(req.service);
    if (methods === undefined) {
      this.#respond(id, statusOf(new TtrpcError(`service ${req.service}`, Code.Unimplemented)));
      return;
    }
    const reg = methods.get(req.method);
    if (reg === undefined) {
      this.#respond(id, statusOf(new TtrpcError(`method ${req.method}`, Code.Unimplemented)));
      return;
    }
    const call = new ServerCall(id, reg);
    this.calls.set(id, call);
    const kind = reg.method.methodKind;
    if (kind === "client_streaming" || kind === "bidi_streaming") {
      call.input = new MessageQueue({
        limit: this.server.streamBufferSize,
        maxBytes: streamMaxBytes(this.channel.maxMessageSize),
        graceMs: this.server.streamFullGraceMs,
        onFull: () =>
          this.#fail(call, new TtrpcError("data handling error: ttrpc: stream buffer full", Code.InvalidArgument)),
      });
      // Go delivers a non-empty initial payload of a client stream as its first message.
      if (req.payload.length > 0) call.input.push(req.payload);
    }
    let deadline: number | undefined;
    if (req.timeoutNano !== 0) {
      const ms = req.timeoutNano / 1e6;
      deadline = performance.now() + ms;
      // Go's handlers return ctx.Err() here; its words travel with the status.
      const expire = () => this.#fail(call, new TtrpcError("context deadline exceeded", Code.DeadlineExceeded));
      if (ms <= 0) {
        queueMicrotask(expire);
      } else {
        call.timer = setTimeout(expire, Math.min(ms, 2 ** 31 - 1));
      }
    }
    const context = new CallContext(req.service, reg.method, req.metadata, this.peer, call, deadline);
    void this.#run(call, context, req.payload);
  }

  async #run(call: ServerCall, context: HandlerContext, payload: Uint8Array): Promise<void> {
    const { method } = call.reg;
    const server = this.server;
    // Interceptors see the call as a request object; without them the
    // handler is called directly (no object, no extra promise per call).
    const request = () => ({
      service: context.service,
      method,
      fullMethod: context.fullMethod,
      metadata: context.metadata,
      signal: context.signal,
      timeoutMs: context.timeoutMs(),
      context,
    });
    try {
      if (method.methodKind === "unary") {
        const message = this.#decodeInput(method, payload);
        const result = server.hasInterceptors
          ? ((await server.unaryFn({ ...request(), stream: false, message })) as UnaryResponse).message
          : await (call.reg.impl as (m: unknown, c: HandlerContext) => unknown)(message, context);
        if (call.finished) return;
        this.#respond(call.id, OK_STATUS, this.#encodeOutput(method, result));
        this.#end(call, CALL_ENDED);
        return;
      }
      const messages =
        call.input !== undefined ? decodeAll(method.input, call.input) : new Once(this.#decodeInput(method, payload));
      const res = (await server.streamFn({ ...request(), stream: true, messages })) as StreamResponse;
      if (method.methodKind === "client_streaming") {
        let result: unknown;
        let n = 0;
        for await (const m of res.messages) {
          result = m;
          n++;
        }
        if (call.finished) return;
        if (n !== 1) throw new TtrpcError(`client-streaming handler produced ${n} responses`, Code.Internal);
        this.#respond(call.id, OK_STATUS, this.#encodeOutput(method, result));
      } else {
        for await (const m of res.messages) {
          if (call.finished) return;
          this.channel.writeFrame(call.id, MessageType.Data, 0, this.#encodeOutput(method, m));
          if (this.channel.needsDrain) await this.channel.drained();
        }
        if (call.finished) return;
        this.channel.writeFrame(call.id, MessageType.Data, Flags.RemoteClosed | Flags.NoData);
      }
      this.#end(call, CALL_ENDED);
    } catch (e) {
      if (call.finished) return;
      this.#fail(call, toHandlerError(e, call));
    }
  }

  #decodeInput(method: DescMethod, payload: Uint8Array): unknown {
    try {
      return fromBinary(method.input, payload);
    } catch (e) {
      throw new TtrpcError(`ttrpc: error unmarshalling payload: ${(e as Error).message}`, Code.Internal);
    }
  }

  #encodeOutput(method: DescMethod, message: unknown): EncodedMessage {
    if (message === undefined || message === null) {
      throw new TtrpcError("ttrpc: handler returned no message", Code.Unknown);
    }
    const encoded = encodeMessage(method.output, message);
    const max = this.channel.maxMessageSize;
    if (encoded.length > max) throw new OversizedMessageError(encoded.length, max);
    return encoded;
  }
}

// A handler that gave up because its signal fired reports why the signal fired.
function toHandlerError(e: unknown, call: ServerCall): TtrpcError {
  if (call.finished && e instanceof Error && e.name === "AbortError") return TtrpcError.from(call.signal.reason);
  return TtrpcError.from(e);
}

async function* decodeAll(desc: DescMessage, queue: AsyncIterable<Uint8Array>) {
  for await (const p of queue) yield fromBinary(desc, p);
}

// The one request message of a server-streaming call. Handed to the handler
// without an await when no interceptor replaced it, so handlers start in the
// order their requests arrived (a stream opened before a unary call on the
// same connection is set up before that call runs).
class Once<T> implements AsyncIterable<T> {
  constructor(readonly value: T) {}
  async *[Symbol.asyncIterator]() {
    yield this.value;
  }
}

async function first<T>(it: AsyncIterable<T>): Promise<T> {
  for await (const v of it) return v;
  throw new TtrpcError("ttrpc: server-streaming call without a request message", Code.Internal);
}

async function* one<T>(p: Promise<T>) {
  yield await p;
}

class ServerImpl implements Server {
  readonly services = new Map<string, Map<string, Registered>>();
  readonly connections = new Set<ServerConnection>();
  readonly listeners: { server: NetServer; cleanup: () => void }[] = [];
  readonly maxMessageSize: number | undefined;
  readonly maxConcurrentStreams: number;
  readonly streamBufferSize: number;
  readonly streamFullGraceMs: number;
  readonly unaryFn: CallFn;
  readonly streamFn: CallFn;
  readonly hasInterceptors: boolean;
  closing = false;
  #idleWaiters: (() => void)[] = [];

  constructor(readonly options: ServerOptions) {
    this.maxMessageSize = options.maxMessageSize;
    this.maxConcurrentStreams = options.maxConcurrentStreams ?? 10_000;
    this.streamBufferSize = options.streamBufferSize ?? 64;
    this.streamFullGraceMs = options.streamFullGraceMs ?? 1000;
    this.hasInterceptors = (options.interceptors?.length ?? 0) > 0;
    this.unaryFn = applyInterceptors(
      (async (req: UnaryRequest & { context: CallContext }) => ({
        stream: false,
        message: await req.context.impl(req.message, req.context),
      })) as CallFn,
      options.interceptors,
    );
    this.streamFn = applyInterceptors(
      (async (req: StreamRequest & { context: CallContext }) => {
        const impl = req.context.impl;
        switch (req.method.methodKind) {
          case "server_streaming": {
            const request = req.messages instanceof Once ? req.messages.value : await first(req.messages);
            return { stream: true, messages: impl(request, req.context) };
          }
          case "client_streaming":
            return { stream: true, messages: one(impl(req.messages, req.context) as Promise<unknown>) };
          default:
            return { stream: true, messages: impl(req.messages, req.context) };
        }
      }) as CallFn,
      options.interceptors,
    );
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  register<S extends DescService>(service: S, impl: Partial<ServiceImpl<S>>, options: { name?: string } = {}): this {
    const name = options.name ?? service.typeName;
    if (this.services.has(name)) throw new Error(`ttrpc: service ${name} is already registered`);
    const methods = new Map<string, Registered>();
    for (const method of service.methods) {
      const fn = (impl as Record<string, unknown>)[method.localName];
      if (fn === undefined) continue; // unregistered methods answer UNIMPLEMENTED
      if (typeof fn !== "function") throw new Error(`ttrpc: ${name}.${method.localName} is not a function`);
      methods.set(method.name, { method, impl: fn.bind(impl) as Registered["impl"] });
    }
    this.services.set(name, methods);
    return this;
  }

  serveConnection(socket: Duplex, peer: Partial<PeerInfo> = {}): void {
    const info: PeerInfo = {
      localAddress: peer.localAddress ?? "",
      remoteAddress: peer.remoteAddress ?? (socket instanceof Socket ? socket.remoteAddress : undefined),
    };
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

  connectionClosed(conn: ServerConnection): void {
    this.connections.delete(conn);
    if (this.connections.size === 0) {
      const w = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const f of w) f();
    }
  }

  async listen(address: string | NetServer, options: ListenOptions = {}): Promise<string> {
    if (this.closing) throw new TtrpcError("ttrpc: server closed", Code.Unavailable);
    if (address instanceof NetServer) {
      const addr = address.address();
      const local = typeof addr === "string" ? `unix:${addr}` : addr ? `tcp:${addr.address}:${addr.port}` : "";
      this.#attach(address, local, () => {});
      return local;
    }
    const a = parseAddress(address);
    const net = new NetServer();
    let cleanup = () => {};
    if (a.kind === "unix") {
      await removeStaleSocket(a.path);
      // Bind in a private directory, set the mode, then move the socket into
      // place: no moment exists when others could connect.
      const dir = mkdtempSync(join(dirname(a.path), ".ttrpc-"));
      const tmp = join(dir, "s");
      try {
        await listenOn(net, { path: tmp });
        chmodSync(tmp, options.socketMode ?? 0o600);
        renameSync(tmp, a.path);
      } catch (e) {
        net.close();
        throw e;
      } finally {
        rmdirSync(dir);
      }
      cleanup = () => {
        try {
          unlinkSync(a.path);
        } catch {
          // already gone
        }
      };
    } else {
      await listenOn(net, netOptions(a));
    }
    const actual: Address = a.kind === "tcp" ? { ...a, port: (net.address() as { port: number }).port } : a;
    const local = formatAddress(actual);
    this.#attach(net, local, cleanup);
    return local;
  }

  #attach(net: NetServer, local: string, cleanup: () => void): void {
    net.on("connection", (socket: Socket) => {
      if (socket.remoteAddress !== undefined) socket.setNoDelay(true);
      this.serveConnection(socket, { localAddress: local });
    });
    this.listeners.push({ server: net, cleanup });
  }

  async #stopListening(): Promise<void> {
    const ls = this.listeners.splice(0);
    await Promise.all(
      ls.map(
        (l) =>
          new Promise<void>((resolve) => {
            l.server.close(() => resolve());
            l.cleanup();
          }),
      ),
    );
  }

  async shutdown(options: { timeoutMs?: number } = {}): Promise<void> {
    this.closing = true;
    const stopped = this.#stopListening();
    for (const c of this.connections) {
      c.draining = true;
      if (c.idle) c.close();
    }
    if (this.connections.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.#idleWaiters.push(resolve);
        if (options.timeoutMs !== undefined) {
          timer = setTimeout(() => {
            for (const c of [...this.connections])
              c.channel.close(new TtrpcError("ttrpc: server shut down", Code.Unavailable));
            resolve();
          }, options.timeoutMs);
        }
      });
      if (timer !== undefined) clearTimeout(timer);
    }
    await stopped;
  }

  async close(): Promise<void> {
    this.closing = true;
    const stopped = this.#stopListening();
    for (const c of [...this.connections]) c.channel.close(new TtrpcError("ttrpc: server closed", Code.Unavailable));
    await stopped;
  }
}

function listenOn(net: NetServer, opts: { path: string } | { host: string; port: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    net.once("error", reject);
    net.listen(opts, () => {
      net.off("error", reject);
      resolve();
    });
  });
}

// A socket file left by a server that died is replaced, as users expect; a
// live server's socket, or a file that is not a socket, is an error.
async function removeStaleSocket(path: string): Promise<void> {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) {
    throw new TtrpcError(`cannot listen on ${path}: the file exists and is not a socket`, Code.AlreadyExists);
  }
  const live = await new Promise<boolean>((resolve) => {
    const s = new Socket();
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
    s.connect({ path });
  });
  if (live)
    throw new TtrpcError(
      `cannot listen on ${path}: a server is already listening there (EADDRINUSE)`,
      Code.AlreadyExists,
    );
  unlinkSync(path);
}

/** Creates a ttrpc server. Register services, then `listen` or `serveConnection`. */
export function createServer(options: ServerOptions = {}): Server {
  return new ServerImpl(options);
}
