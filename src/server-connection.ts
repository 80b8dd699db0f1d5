import type { Duplex } from "node:stream";
import { fromBinary, type DescMethod } from "@bufbuild/protobuf";
import { Code } from "./code.js";
import type { ConnectionSettings } from "./connection-settings.js";
import { decodeRequest, encodeResponseFrame, type RequestEnvelope, type StatusEnvelope } from "./envelope.js";
import { Flags, MessageType, type Frame } from "./frame.js";
import type { UnaryResponse } from "./interceptor.js";
import type { EncodedMessage } from "./message-codec.js";
import { CALL_ENDED, ServerCall, toHandlerError, type CallHost } from "./server-call.js";
import { encodedResponse, encodeOutput, Once, requestOf, streamHandler, type Dispatch } from "./server-dispatch.js";
import type { PeerInfo } from "./service-impl.js";
import type { ServiceRegistry } from "./service-registry.js";
import { StreamTable } from "./stream-table.js";
import { protocolError, shutdownError, TtrpcError } from "./ttrpc-error.js";

/** What a connection needs of its server, and no more. */
export interface ConnectionHost {
  readonly registry: Pick<ServiceRegistry, "lookup">;
  readonly dispatch: Dispatch;
  /** Calls one connection may have open. */
  readonly maxConcurrentStreams: number;
  /** The settings of every connection of the server, resolved once. */
  readonly settings: ConnectionSettings;
  /** True once the server is shutting down: new calls are refused. */
  readonly closing: boolean;
  /** The connection ended, for `error`'s reason. */
  connectionClosed(conn: ServerConnection, error: TtrpcError): void;
}

const EMPTY = new Uint8Array(0);
const OK_STATUS: StatusEnvelope = { code: Code.Ok, message: "", details: [] };

function statusOf(e: unknown): StatusEnvelope {
  const err = TtrpcError.from(e);
  return { code: err.code, message: err.rawMessage, details: err.details };
}

/**
 * The server side of one connection: the protocol checks on what clients
 * send (odd, increasing stream IDs; what a Data frame may carry), dispatch to
 * handlers, and Responses. Streams, routing and sending are the stream layer's.
 */
export class ServerConnection implements CallHost {
  readonly table: StreamTable<ServerCall>;
  #lastStreamId = 0;
  /** Set by a graceful shutdown: the connection closes once its last call ends. */
  draining = false;

  constructor(
    readonly host: ConnectionHost,
    socket: Duplex,
    readonly peer: PeerInfo,
  ) {
    this.table = new StreamTable<ServerCall>(
      socket,
      {
        frame: (f, call) => this.#frame(f, call),
        oversized: (err, id, call) => {
          if (call !== undefined) this.failCall(call, err);
          else this.#respond(id, statusOf(err));
        },
        closed: (err) => host.connectionClosed(this, err),
      },
      host.settings,
    );
  }

  get idle(): boolean {
    return this.table.size === 0;
  }

  close(error?: TtrpcError): void {
    this.table.channel.close(error);
  }

  // A response over the limit is replaced by its RESOURCE_EXHAUSTED status:
  // Go closes the whole connection there; one call failing is enough.
  #respond(id: number, status: StatusEnvelope | undefined, payload: Uint8Array | EncodedMessage = EMPTY): void {
    const channel = this.table.channel;
    if (channel.closed) return;
    let frame: Uint8Array[];
    try {
      frame = encodeResponseFrame(id, status, payload, this.host.settings.maxMessageSize);
    } catch (e) {
      frame = encodeResponseFrame(id, statusOf(e), EMPTY);
    }
    channel.write(frame);
  }

  /** Fails a call with a status the client will see. */
  failCall(call: ServerCall, error: TtrpcError): void {
    if (call.finished) return;
    this.#respond(call.id, statusOf(error));
    call.finish(error);
  }

  callEnded(): void {
    if (this.draining && this.idle) this.close();
  }

  #frame(f: Frame, call: ServerCall | undefined): void {
    if (f.type !== MessageType.Request && f.type !== MessageType.Data) return; // future frame types
    if (f.streamId % 2 === 0) {
      this.#respond(
        f.streamId,
        statusOf(protocolError("StreamID must be odd for client initiated streams", Code.InvalidArgument)),
      );
      return;
    }
    if (f.type === MessageType.Data) {
      this.#data(f, call);
      return;
    }
    if (f.streamId <= this.#lastStreamId) {
      this.#respond(
        f.streamId,
        statusOf(protocolError("StreamID cannot be re-used and must increment", Code.InvalidArgument)),
      );
      return;
    }
    this.#lastStreamId = f.streamId;
    let req: RequestEnvelope;
    try {
      req = decodeRequest(f.payload);
    } catch (e) {
      this.#respond(
        f.streamId,
        statusOf(protocolError(`unmarshal request error: ${(e as Error).message}`, Code.InvalidArgument)),
      );
      return;
    }
    this.#request(f.streamId, req);
  }

  // What a client's Data frame may carry, in Go's words.
  #data(f: Frame, call: ServerCall | undefined): void {
    if (call === undefined) {
      this.#respond(f.streamId, statusOf(protocolError("StreamID is no longer active", Code.InvalidArgument)));
      return;
    }
    if (!call.takesInput) {
      this.failCall(call, protocolError("data on a stream whose method takes no client stream", Code.InvalidArgument));
      return;
    }
    if (call.remoteClosed) {
      this.failCall(call, protocolError("StreamID is no longer active", Code.InvalidArgument));
      return;
    }
    const noData = (f.flags & Flags.NoData) !== 0;
    if (noData ? f.payload.length > 0 : (f.flags & Flags.RemoteClosed) !== 0) {
      this.failCall(call, protocolError("data close message cannot include data", Code.InvalidArgument));
      return;
    }
    call.receiveData(f.flags, f.payload);
  }

  #request(id: number, req: RequestEnvelope): void {
    const host = this.host;
    if (this.draining || host.closing) {
      this.#respond(id, statusOf(shutdownError("ttrpc: server shutting down")));
      return;
    }
    if (this.table.size >= host.maxConcurrentStreams) {
      const limit = host.maxConcurrentStreams;
      const err = new TtrpcError(
        `too many concurrent streams on this connection (limit ${limit})`,
        Code.ResourceExhausted,
      );
      this.#respond(id, statusOf(err));
      return;
    }
    const reg = host.registry.lookup(req.service, req.method);
    if (reg instanceof TtrpcError) {
      this.#respond(id, statusOf(reg));
      return;
    }
    const call = new ServerCall(id, this.table, this, reg, req.service, req.metadata, this.peer);
    this.table.add(call);
    // Go delivers a non-empty initial payload of a client stream as its first message.
    if (call.takesInput && req.payload.length > 0) call.push(req.payload);
    if (req.timeoutNano !== 0) call.setDeadline(req.timeoutNano);
    if (reg.method.methodKind === "unary" && !this.host.dispatch.intercepted) this.#runUnary(call, req.payload);
    else void this.#run(call, req.payload);
  }

  // Without interceptors a handler that answers at once is answered at once:
  // no async frame and no promise per call; a promise is awaited.
  #runUnary(call: ServerCall, payload: Uint8Array): void {
    let result: unknown;
    try {
      result = call.impl(decodeInput(call.method, payload), call);
    } catch (e) {
      this.#handlerFailed(call, e);
      return;
    }
    if (isThenable(result)) {
      result.then(
        (r) => this.#unaryResult(call, r),
        (e: unknown) => this.#handlerFailed(call, e),
      );
    } else {
      this.#unaryResult(call, result);
    }
  }

  #unaryResult(call: ServerCall, result: unknown): void {
    if (call.finished) return;
    let encoded: EncodedMessage;
    try {
      encoded = encodeOutput(call, result);
    } catch (e) {
      this.#handlerFailed(call, e);
      return;
    }
    this.#respond(call.id, OK_STATUS, encoded);
    call.finish(CALL_ENDED);
  }

  #handlerFailed(call: ServerCall, e: unknown): void {
    if (call.finished) return;
    this.failCall(call, toHandlerError(e, call));
  }

  async #run(call: ServerCall, payload: Uint8Array): Promise<void> {
    const { method } = call;
    const dispatch = this.host.dispatch;
    try {
      if (method.methodKind === "unary") {
        const message = decodeInput(method, payload);
        const res = (await dispatch.unary(requestOf(call, false, message))) as UnaryResponse;
        if (call.finished) return;
        this.#respond(call.id, OK_STATUS, encodedResponse(call, res));
        call.finish(CALL_ENDED);
        return;
      }
      const messages = await streamHandler(
        dispatch,
        call,
        call.takesInput ? call : new Once(decodeInput(method, payload)),
      );
      if (method.methodKind === "client_streaming") {
        let result: unknown;
        let n = 0;
        for await (const m of messages) {
          result = m;
          n++;
        }
        if (call.finished) return;
        if (n !== 1) throw new TtrpcError(`client-streaming handler produced ${n} responses`, Code.Internal);
        this.#respond(call.id, OK_STATUS, encodeOutput(call, result));
      } else {
        await this.table.send(call, method.output, messages);
      }
      call.finish(CALL_ENDED);
    } catch (e) {
      this.#handlerFailed(call, e);
    }
  }
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof (v as PromiseLike<unknown> | null)?.then === "function";
}

function decodeInput(method: DescMethod, payload: Uint8Array): unknown {
  try {
    return fromBinary(method.input, payload);
  } catch (e) {
    throw new TtrpcError(`ttrpc: error unmarshalling payload: ${(e as Error).message}`, Code.Internal);
  }
}
