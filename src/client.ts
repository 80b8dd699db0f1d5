import type { Duplex } from "node:stream";
import type {
  DescMessage,
  DescMethod,
  DescMethodBiDiStreaming,
  DescMethodClientStreaming,
  DescMethodServerStreaming,
  DescMethodUnary,
  MessageInitShape,
  MessageShape,
} from "@bufbuild/protobuf";
import type { Channel } from "./channel.js";
import { Code } from "./code.js";
import { CLIENT_CONNECTIONS, connectionSettings } from "./connection-settings.js";
import { CallDeadline, callSignal, NEVER, requestTimeoutNano } from "./deadline.js";
import { encodeRequestFrame } from "./envelope.js";
import { Flags } from "./frame.js";
import {
  applyInterceptors,
  type CallFn,
  type Interceptor,
  type StreamRequest,
  type StreamResponse,
  type UnaryRequest,
  type UnaryResponse,
} from "./interceptor.js";
import type { EncodedMessage } from "./message-codec.js";
import { Metadata, type MetadataInit } from "./metadata.js";
import { ClientStream } from "./client-stream.js";
import { StreamIds } from "./stream-ids.js";
import { StreamTable } from "./stream-table.js";
import { TtrpcError } from "./ttrpc-error.js";

/** Options of one call. */
export interface CallOptions {
  /** Aborting it cancels the call locally with CANCELLED (ttrpc has no cancel frame). */
  signal?: AbortSignal;
  /** Deadline, relative, in milliseconds; sent to the server as `timeout_nano`. */
  timeoutMs?: number;
  /** Request metadata, sent on every call shape. */
  metadata?: MetadataInit;
}

/** Options of a client connection. */
export interface ClientOptions {
  /** Largest payload sent or accepted, in bytes. Default 4 MiB, as Go and Rust. */
  maxMessageSize?: number;
  /** Applied to every call, the first outermost. */
  interceptors?: Interceptor[];
  /** Deadline for calls that set none, in milliseconds. Default: none. */
  defaultTimeoutMs?: number;
  /**
   * Messages one stream may hold unread before the grace period starts.
   * Default 64. Past 4 × maxMessageSize (at least 16 MiB) of unread data the
   * stream fails at once.
   */
  streamBufferSize?: number;
  /** How long an over-full stream waits for its reader before it fails. Default 1000 ms. */
  streamFullGraceMs?: number;
}

/**
 * A ttrpc client on one connection. Calls take protobuf-es method descriptors
 * (from a `GenService`); generated clients wrap these four methods.
 */
export interface Client {
  /** One request, one response. Rejects with a {@link TtrpcError} carrying the server's status. */
  unary<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    input: MessageInitShape<I>,
    options?: CallOptions,
  ): Promise<MessageShape<O>>;
  /** One request, a stream of responses; ends when the server closes its side, throws on a non-OK status. */
  serverStream<I extends DescMessage, O extends DescMessage>(
    method: DescMethodServerStreaming<I, O>,
    input: MessageInitShape<I>,
    options?: CallOptions,
  ): AsyncIterable<MessageShape<O>>;
  /** Sends every input, closes the send side, then resolves with the one response. */
  clientStream<I extends DescMessage, O extends DescMessage>(
    method: DescMethodClientStreaming<I, O>,
    inputs: AsyncIterable<MessageInitShape<I>> | Iterable<MessageInitShape<I>>,
    options?: CallOptions,
  ): Promise<MessageShape<O>>;
  /** Inputs and responses flow independently; the send side closes when `inputs` ends. */
  bidiStream<I extends DescMessage, O extends DescMessage>(
    method: DescMethodBiDiStreaming<I, O>,
    inputs: AsyncIterable<MessageInitShape<I>> | Iterable<MessageInitShape<I>>,
    options?: CallOptions,
  ): AsyncIterable<MessageShape<O>>;
  /** Closes the connection; pending calls fail with UNAVAILABLE. */
  close(): void;
  /** `await using client = await connect(…)`: closes the connection and waits for it to end. */
  [Symbol.asyncDispose](): Promise<void>;
  readonly closed: boolean;
  /** Resolves with the reason once the connection has ended, whoever ended it. */
  readonly done: Promise<TtrpcError>;
}

const EMPTY = new Uint8Array(0);
const NO_METADATA = new Metadata();
const NO_ENTRIES: readonly [string, string][] = [];
// A call without options allocates none.
const NO_OPTIONS: CallOptions = Object.freeze({});

class ClientImpl implements Client {
  readonly #table: StreamTable<ClientStream>;
  readonly #channel: Channel;
  readonly #options: ClientOptions;
  readonly #unaryFn: CallFn;
  readonly #streamFn: CallFn;
  readonly #intercepted: boolean;
  readonly #ids = new StreamIds();
  /** The deadline behind each intercepted call's signal. */
  readonly #deadlines = new WeakMap<AbortSignal, CallDeadline>();
  #resolveDone!: (e: TtrpcError) => void;
  readonly done: Promise<TtrpcError>;

  constructor(socket: Duplex, options: ClientOptions) {
    this.#options = options;
    this.done = new Promise((r) => (this.#resolveDone = r));
    this.#table = new StreamTable<ClientStream>(
      socket,
      {
        frame: (f, stream) => stream?.frame(f),
        oversized: (err, _id, stream) => stream?.close(err),
        closed: (err) => this.#resolveDone(err),
      },
      connectionSettings(options, CLIENT_CONNECTIONS),
    );
    this.#channel = this.#table.channel;
    this.#intercepted = (options.interceptors?.length ?? 0) > 0;
    this.#unaryFn = applyInterceptors(
      ((req: UnaryRequest) => this.#runUnary(req)) as unknown as CallFn,
      options.interceptors,
    );
    this.#streamFn = applyInterceptors(
      ((req: StreamRequest) => this.#runStream(req)) as unknown as CallFn,
      options.interceptors,
    );
  }

  get closed(): boolean {
    return this.#channel.closed;
  }

  /** A call's deadline, relative, in ms: its own or the client's default. The one place it is resolved. */
  #timeoutMs(options: CallOptions): number | undefined {
    return options.timeoutMs ?? this.#options.defaultTimeoutMs;
  }

  close(): void {
    this.#channel.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.done;
  }

  unary<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    input: MessageInitShape<I>,
    options: CallOptions = NO_OPTIONS,
  ): Promise<MessageShape<O>> {
    const reply = this.#intercepted
      ? this.#unaryIntercepted(method, input, options)
      : this.#unaryDirect(method, input, options);
    return reply as Promise<MessageShape<O>>;
  }

  // Without interceptors: no request object and no async frames; a call with
  // neither signal nor deadline makes no AbortController and no timer.
  #unaryDirect(method: DescMethod, input: unknown, options: CallOptions): Promise<unknown> {
    const timeoutMs = this.#timeoutMs(options);
    const user = options.signal;
    if (user === undefined && timeoutMs === undefined) {
      try {
        return this.#openUnary(method, input, NEVER, undefined, options.metadata).next().then(unaryMessage);
      } catch (e) {
        return Promise.reject(e);
      }
    }
    const { signal, cleanup } = callSignal(user, timeoutMs);
    let reply: Promise<IteratorResult<unknown>>;
    try {
      reply = this.#openUnary(method, input, signal, timeoutMs, options.metadata).next();
    } catch (e) {
      cleanup();
      return Promise.reject(e);
    }
    return reply.then(unaryMessage).finally(cleanup);
  }

  #openUnary(
    method: DescMethod,
    input: unknown,
    signal: AbortSignal,
    timeoutMs: number | undefined,
    metadata: MetadataInit | undefined,
  ): ClientStream {
    const md = metadata === undefined ? undefined : new Metadata(metadata);
    return this.#open(method, 0, this.#table.encode(method.input, input), signal, timeoutMs, md);
  }

  async #unaryIntercepted(method: DescMethod, input: unknown, options: CallOptions): Promise<unknown> {
    const call = this.#prepare(method, options, false, input);
    try {
      const res = (await this.#unaryFn(call.request)) as UnaryResponse;
      return res.message;
    } finally {
      call.cleanup();
    }
  }

  serverStream<I extends DescMessage, O extends DescMessage>(
    method: DescMethodServerStreaming<I, O>,
    input: MessageInitShape<I>,
    options: CallOptions = NO_OPTIONS,
  ): AsyncIterable<MessageShape<O>> {
    return this.#streaming(method, [input], options);
  }

  async clientStream<I extends DescMessage, O extends DescMessage>(
    method: DescMethodClientStreaming<I, O>,
    inputs: AsyncIterable<MessageInitShape<I>> | Iterable<MessageInitShape<I>>,
    options: CallOptions = NO_OPTIONS,
  ): Promise<MessageShape<O>> {
    let result: MessageShape<O> | undefined;
    for await (const m of this.#streaming<O>(method, inputs, options)) {
      if (result !== undefined)
        throw new TtrpcError("ttrpc: client-streaming call answered more than one message", Code.Internal);
      result = m;
    }
    if (result === undefined)
      throw new TtrpcError("ttrpc: client-streaming call ended without a response", Code.Internal);
    return result;
  }

  bidiStream<I extends DescMessage, O extends DescMessage>(
    method: DescMethodBiDiStreaming<I, O>,
    inputs: AsyncIterable<MessageInitShape<I>> | Iterable<MessageInitShape<I>>,
    options: CallOptions = NO_OPTIONS,
  ): AsyncIterable<MessageShape<O>> {
    return this.#streaming(method, inputs, options);
  }

  async *#streaming<O extends DescMessage>(
    method: DescMethod,
    inputs: AsyncIterable<unknown> | Iterable<unknown>,
    options: CallOptions,
  ): AsyncGenerator<MessageShape<O>> {
    const call = this.#prepare(method, options, true, toAsync(inputs));
    try {
      const res = (await this.#streamFn(call.request)) as StreamResponse;
      for await (const m of res.messages) yield m as MessageShape<O>;
    } finally {
      call.cleanup();
    }
  }

  // Metadata, deadline and cancellation of one call.
  #prepare(
    method: DescMethod,
    options: CallOptions,
    stream: false,
    message: unknown,
  ): { request: UnaryRequest; cleanup: () => void };
  #prepare(
    method: DescMethod,
    options: CallOptions,
    stream: true,
    messages: AsyncIterable<unknown>,
  ): { request: StreamRequest; cleanup: () => void };
  #prepare(
    method: DescMethod,
    options: CallOptions,
    stream: boolean,
    input: unknown,
  ): { request: UnaryRequest | StreamRequest; cleanup: () => void } {
    const timeoutMs = this.#timeoutMs(options);
    // Re-armed if the Request goes out with another timeoutMs (see #openRequest).
    const deadline = new CallDeadline(options.signal, timeoutMs);
    const signal = deadline.signal;
    this.#deadlines.set(signal, deadline);
    const cleanup = () => deadline.cleanup();
    const service = method.parent.typeName;
    const fullMethod = `/${service}/${method.name}`;
    // Without interceptors nobody changes a call's metadata: calls without any share one.
    const metadata =
      options.metadata === undefined && !this.#intercepted ? NO_METADATA : new Metadata(options.metadata);
    const request: UnaryRequest | StreamRequest = stream
      ? {
          service,
          method,
          fullMethod,
          metadata,
          signal,
          timeoutMs,
          stream: true,
          messages: input as AsyncIterable<unknown>,
        }
      : { service, method, fullMethod, metadata, signal, timeoutMs, stream: false, message: input };
    return { request, cleanup };
  }

  // Allocates the stream ID and writes the Request in one synchronous step, so
  // IDs reach the wire strictly increasing (containerd/ttrpc#168).
  #open(
    method: DescMethod,
    flags: number,
    payload: Uint8Array | EncodedMessage,
    signal: AbortSignal,
    timeoutMs: number | undefined,
    metadata: Metadata | undefined,
  ): ClientStream {
    if (signal.aborted) throw signal.reason;
    const ended = this.#channel.error;
    if (ended !== undefined) throw ended;
    const id = this.#ids.peek();
    const frame = encodeRequestFrame(
      id,
      flags,
      method.parent.typeName,
      method.name,
      payload,
      requestTimeoutNano(timeoutMs),
      metadata === undefined || metadata.size === 0 ? NO_ENTRIES : metadata.entries(),
      this.#table.settings.maxMessageSize,
    );
    this.#ids.take();
    const stream = new ClientStream(id, this.#table, method, signal);
    this.#table.add(stream);
    this.#channel.write(frame);
    return stream;
  }

  // The request as the interceptors left it: if one changed timeoutMs, the
  // call's timer follows it, so the timer and the wire say the same.
  #openRequest(req: UnaryRequest | StreamRequest, flags: number, payload: Uint8Array | EncodedMessage): ClientStream {
    this.#deadlines.get(req.signal)?.arm(req.timeoutMs);
    return this.#open(req.method, flags, payload, req.signal, req.timeoutMs, req.metadata);
  }

  async #runUnary(req: UnaryRequest) {
    const stream = this.#openRequest(req, 0, this.#table.encode(req.method.input, req.message));
    return { stream: false as const, message: unaryMessage(await stream.next()) };
  }

  async #runStream(req: StreamRequest) {
    const { method } = req;
    const clientStreaming = method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming";
    let stream: ClientStream;
    if (!clientStreaming) {
      // Server streaming: the one request message travels inside the Request.
      let first: unknown;
      for await (const m of req.messages) {
        first = m;
        break;
      }
      stream = this.#openRequest(req, Flags.RemoteClosed, this.#table.encode(method.input, first ?? {}));
    } else {
      // Data frames follow; NoData says the Request holds no message, so that a ttrpc-rust
      // server does not hand its empty payload to the handler as one (ttrpc-rust#221).
      stream = this.#openRequest(req, Flags.RemoteOpen | Flags.NoData, EMPTY);
      // The caller's own input failing fails the call with that very error.
      this.#table.send(stream, method.input, req.messages).catch((e: unknown) => stream.cancel(e));
    }
    return { stream: true as const, messages: stream };
  }
}

function unaryMessage(r: IteratorResult<unknown>): unknown {
  if (r.done === true) throw new TtrpcError("ttrpc: unary call ended without a response", Code.Internal);
  return r.value;
}

async function* toAsync<T>(it: AsyncIterable<T> | Iterable<T>): AsyncIterable<T> {
  yield* it;
}

/**
 * Creates a client on a connected byte stream: a `net.Socket` (unix socket,
 * named pipe, TCP) or any other Duplex. See `connect` to dial an address.
 *
 * @example
 * ```ts
 * import { connect as netConnect } from "node:net";
 * import { createClient } from "ttrpc-es";
 *
 * const socket = netConnect("/run/containerd/containerd.sock.ttrpc");
 * await new Promise((resolve) => socket.once("connect", resolve));
 * await using client = createClient(socket, { maxMessageSize: 8 << 20 });
 * ```
 */
export function createClient(socket: Duplex, options: ClientOptions = {}): Client {
  return new ClientImpl(socket, options);
}
