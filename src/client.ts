import type { Duplex } from "node:stream";
import {
  fromBinary,
  type DescMessage,
  type DescMethod,
  type DescMethodBiDiStreaming,
  type DescMethodClientStreaming,
  type DescMethodServerStreaming,
  type DescMethodUnary,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import { Channel, closedError } from "./channel.js";
import { Code } from "./code.js";
import { decodeResponse, encodeRequestFrame } from "./envelope.js";
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
import { MessageQueue, streamMaxBytes } from "./message-queue.js";
import { encodeMessage, type EncodedMessage } from "./message-codec.js";
import { Metadata, type MetadataInit } from "./metadata.js";
import { OversizedMessageError, TtrpcError } from "./ttrpc-error.js";

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
  unary<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    input: MessageInitShape<I>,
    options?: CallOptions,
  ): Promise<MessageShape<O>>;
  serverStream<I extends DescMessage, O extends DescMessage>(
    method: DescMethodServerStreaming<I, O>,
    input: MessageInitShape<I>,
    options?: CallOptions,
  ): AsyncIterable<MessageShape<O>>;
  clientStream<I extends DescMessage, O extends DescMessage>(
    method: DescMethodClientStreaming<I, O>,
    inputs: AsyncIterable<MessageInitShape<I>> | Iterable<MessageInitShape<I>>,
    options?: CallOptions,
  ): Promise<MessageShape<O>>;
  bidiStream<I extends DescMessage, O extends DescMessage>(
    method: DescMethodBiDiStreaming<I, O>,
    inputs: AsyncIterable<MessageInitShape<I>> | Iterable<MessageInitShape<I>>,
    options?: CallOptions,
  ): AsyncIterable<MessageShape<O>>;
  /** Closes the connection; pending calls fail with UNAVAILABLE. */
  close(): void;
  readonly closed: boolean;
  /** Resolves with the reason once the connection has ended, whoever ended it. */
  readonly done: Promise<TtrpcError>;
}

const EMPTY = new Uint8Array(0);
const NEVER = new AbortController().signal;
const NO_METADATA = new Metadata();
const noop = () => {};

// One open stream of this client.
class ClientStream {
  readonly queue: MessageQueue;
  finished = false;

  constructor(
    readonly id: number,
    readonly method: DescMethod,
    private readonly onDone: (s: ClientStream) => void,
    limit: number,
    maxBytes: number,
    graceMs: number,
  ) {
    this.queue = new MessageQueue({
      limit,
      maxBytes,
      graceMs,
      onReturn: () => this.finish(),
      onFull: () => this.end(new TtrpcError("ttrpc: stream buffer full", Code.ResourceExhausted)),
    });
  }

  get streamingServer(): boolean {
    return this.method.methodKind === "server_streaming" || this.method.methodKind === "bidi_streaming";
  }

  frame(f: Frame): void {
    if (f.type === MessageType.Response) {
      let res;
      try {
        res = decodeResponse(f.payload);
      } catch (e) {
        this.fail(new TtrpcError(`ttrpc: malformed response: ${(e as Error).message}`, Code.Internal));
        return;
      }
      const st = res.status;
      if (st !== undefined && st.code !== Code.Ok) {
        this.end(new TtrpcError(st.message, st.code, { details: st.details }));
        return;
      }
      // An OK Response ends a stream too (the Swift port ends streams so);
      // an empty one carries no message.
      if (!this.streamingServer || res.payload.length > 0) this.queue.push(res.payload);
      this.finish();
      this.queue.end();
      return;
    }
    if (f.type === MessageType.Data) {
      if (!this.streamingServer) {
        this.fail(new TtrpcError("ttrpc: received data from non-streaming server", Code.Internal));
        return;
      }
      if ((f.flags & Flags.NoData) === 0) this.queue.push(f.payload);
      if ((f.flags & Flags.RemoteClosed) !== 0) {
        this.finish();
        this.queue.end();
      }
      return;
    }
    this.fail(new TtrpcError(`ttrpc: unexpected message type ${f.type} received: protocol error`, Code.Internal));
  }

  /** Ends the stream: the reader gets what is queued, then `error`. */
  end(error: TtrpcError): void {
    this.finish();
    this.queue.end(error);
  }

  /** Ends the stream at once, dropping what is queued (the caller gave up). */
  fail(error: unknown): void {
    this.finish();
    this.queue.fail(error);
  }

  finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.onDone(this);
  }
}

class ClientImpl implements Client {
  readonly #channel: Channel;
  readonly #streams = new Map<number, ClientStream>();
  readonly #options: ClientOptions;
  readonly #max: number;
  readonly #unaryFn: CallFn;
  readonly #streamFn: CallFn;
  readonly #intercepted: boolean;
  #nextId = 1;
  #resolveDone!: (e: TtrpcError) => void;
  readonly done: Promise<TtrpcError>;

  constructor(socket: Duplex, options: ClientOptions) {
    this.#options = options;
    this.done = new Promise((r) => (this.#resolveDone = r));
    this.#channel = new Channel(
      socket,
      {
        frame: (f) => this.#streams.get(f.streamId)?.frame(f),
        // A stream the caller abandoned may go on arriving (ttrpc has no
        // cancel frame): its bytes are skipped, not copied and decoded.
        wants: (id) => this.#streams.has(id),
        oversized: (id, _type, _flags, length) =>
          this.#streams.get(id)?.end(new OversizedMessageError(length, this.#max)),
        closed: (err) => {
          for (const s of [...this.#streams.values()]) s.end(err);
          this.#streams.clear();
          this.#resolveDone(err);
        },
      },
      options.maxMessageSize === undefined ? {} : { maxMessageSize: options.maxMessageSize },
    );
    this.#max = this.#channel.maxMessageSize;
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

  close(): void {
    this.#channel.close();
  }

  async unary<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    input: MessageInitShape<I>,
    options: CallOptions = {},
  ): Promise<MessageShape<O>> {
    const call = this.#prepare(method, options, false, input);
    try {
      const res = (await this.#unaryFn(call.request)) as UnaryResponse;
      return res.message as MessageShape<O>;
    } finally {
      call.cleanup();
    }
  }

  serverStream<I extends DescMessage, O extends DescMessage>(
    method: DescMethodServerStreaming<I, O>,
    input: MessageInitShape<I>,
    options: CallOptions = {},
  ): AsyncIterable<MessageShape<O>> {
    return this.#streaming(method, [input], options);
  }

  async clientStream<I extends DescMessage, O extends DescMessage>(
    method: DescMethodClientStreaming<I, O>,
    inputs: AsyncIterable<MessageInitShape<I>> | Iterable<MessageInitShape<I>>,
    options: CallOptions = {},
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
    options: CallOptions = {},
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

  // Metadata, deadline and cancellation of one call. A call with neither a
  // signal nor a deadline shares one signal that never fires: an
  // AbortController per call was a tenth of a unary call's cost.
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
    const timeoutMs = options.timeoutMs ?? this.#options.defaultTimeoutMs;
    const user = options.signal;
    let signal = NEVER;
    let cleanup = noop;
    if (user !== undefined || timeoutMs !== undefined) {
      const controller = new AbortController();
      signal = controller.signal;
      let timer: NodeJS.Timeout | undefined;
      const onUserAbort = () =>
        controller.abort(new TtrpcError("ttrpc: call cancelled", Code.Canceled, { cause: user?.reason }));
      let unwatch = noop;
      if (user !== undefined) {
        if (user.aborted) onUserAbort();
        else unwatch = watchAbort(user, onUserAbort);
      }
      if (timeoutMs !== undefined && !signal.aborted) {
        if (timeoutMs <= 0) controller.abort(deadlineError());
        else timer = setTimeout(() => controller.abort(deadlineError()), timeoutMs);
      }
      cleanup = () => {
        if (timer !== undefined) clearTimeout(timer);
        unwatch();
      };
    }
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

  #encode(desc: DescMessage, message: unknown): EncodedMessage {
    const encoded = encodeMessage(desc, message);
    if (encoded.length > this.#max) throw new OversizedMessageError(encoded.length, this.#max);
    return encoded;
  }

  // Allocates the stream ID and writes the Request in one synchronous step, so
  // IDs reach the wire strictly increasing (containerd/ttrpc#168).
  #open(req: UnaryRequest | StreamRequest, flags: number, payload: Uint8Array | EncodedMessage): ClientStream {
    const { signal } = req;
    if (signal.aborted) throw signal.reason;
    if (this.#channel.closed) throw closedError();
    if (this.#nextId > 0xffffffff)
      throw new TtrpcError("ttrpc: stream IDs exhausted; open a new connection", Code.Unavailable);
    const id = this.#nextId;
    const timeoutNano = req.timeoutMs === undefined ? 0 : Math.max(1, Math.round(req.timeoutMs * 1e6));
    const frame = encodeRequestFrame(
      id,
      flags,
      req.service,
      req.method.name,
      payload,
      timeoutNano,
      req.metadata.entries(),
      this.#max,
    );
    this.#nextId += 2;
    const watch = signal !== NEVER;
    const stream = new ClientStream(
      id,
      req.method,
      (s) => {
        this.#streams.delete(s.id);
        if (watch) signal.removeEventListener("abort", onAbort);
      },
      this.#options.streamBufferSize ?? 64,
      streamMaxBytes(this.#max),
      this.#options.streamFullGraceMs ?? 1000,
    );
    const onAbort = () => stream.fail(TtrpcError.from(signal.reason, Code.Canceled));
    if (watch) signal.addEventListener("abort", onAbort, { once: true });
    this.#streams.set(id, stream);
    this.#channel.write(frame);
    return stream;
  }

  async #runUnary(req: UnaryRequest) {
    const payload = this.#encode(req.method.input, req.message);
    const stream = this.#open(req, 0, payload);
    const r = await stream.queue.next();
    if (r.done) throw new TtrpcError("ttrpc: unary call ended without a response", Code.Internal);
    return { stream: false as const, message: fromBinary(req.method.output, r.value) };
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
      stream = this.#open(req, Flags.RemoteClosed, this.#encode(method.input, first ?? {}));
    } else {
      stream = this.#open(req, Flags.RemoteOpen, EMPTY);
      void this.#pump(stream, req.messages);
    }
    const output = method.output;
    async function* decode() {
      for await (const p of stream.queue) yield fromBinary(output, p);
    }
    return { stream: true as const, messages: decode() };
  }

  // Sends a client stream's messages, waiting for the socket when its buffer
  // is full, then half-closes.
  async #pump(stream: ClientStream, messages: AsyncIterable<unknown>): Promise<void> {
    try {
      for await (const m of messages) {
        if (stream.finished) return;
        this.#channel.writeFrame(stream.id, MessageType.Data, 0, this.#encode(stream.method.input, m));
        if (this.#channel.needsDrain) await this.#channel.drained();
      }
      if (!stream.finished) this.#channel.writeFrame(stream.id, MessageType.Data, Flags.RemoteClosed | Flags.NoData);
    } catch (e) {
      // The caller's own input failed: the call rejects with that very error.
      stream.fail(e);
    }
  }
}

// One listener per signal, however many calls share it: Node warns past ten
// listeners on one AbortSignal, and a single shutdown signal handed to every
// call is the common case.
const watchers = new WeakMap<AbortSignal, Set<() => void>>();

function watchAbort(signal: AbortSignal, fn: () => void): () => void {
  let fns = watchers.get(signal);
  if (fns === undefined) {
    const set = new Set<() => void>();
    fns = set;
    watchers.set(signal, set);
    signal.addEventListener(
      "abort",
      () => {
        watchers.delete(signal);
        for (const f of set) f();
      },
      { once: true },
    );
  }
  const set = fns;
  set.add(fn);
  return () => set.delete(fn);
}

function deadlineError(): TtrpcError {
  return new TtrpcError("ttrpc: deadline exceeded", Code.DeadlineExceeded);
}

async function* toAsync<T>(it: AsyncIterable<T> | Iterable<T>): AsyncIterable<T> {
  yield* it;
}

/**
 * Creates a client on a connected byte stream: a `net.Socket` (unix socket,
 * named pipe, TCP) or any other Duplex. See `connect` to dial an address.
 */
export function createClient(socket: Duplex, options: ClientOptions = {}): Client {
  return new ClientImpl(socket, options);
}
