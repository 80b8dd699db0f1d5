import type { DescMethod } from "@bufbuild/protobuf";
import { Code } from "./code.js";
import { LongTimer, timeoutNanoMs } from "./deadline.js";
import { ErrorReason } from "./error-reason.js";
import { Metadata } from "./metadata.js";
import type { HandlerContext, PeerInfo } from "./service-impl.js";
import type { Registered } from "./service-registry.js";
import { Stream } from "./stream.js";
import type { StreamTable } from "./stream-table.js";
import { TtrpcError } from "./ttrpc-error.js";

// Why a finished call's signal fires. One shared value: building an Error
// (and its stack) for every call was a tenth of the server's time.
export const CALL_ENDED = new TtrpcError("ttrpc: call ended", Code.Canceled);

/** What a call tells its connection. */
export interface CallHost {
  /** The call's deadline passed, or its reader fell too far behind: answer with `error`. */
  failCall(call: ServerCall, error: TtrpcError): void;
  /** The call left the table. */
  callEnded(call: ServerCall): void;
}

/**
 * One call in progress on a server connection, and its handler's context in
 * the same object (one per open stream: the fewer, the less memory). Its
 * receive queue is the handler's input when the method takes a client stream.
 */
export class ServerCall extends Stream implements HandlerContext {
  // Made on first use: most handlers never look at their signal.
  #controller: AbortController | undefined;
  #reason: unknown;
  #timer: LongTimer | undefined;
  #metadata: Metadata | undefined;
  #deadline: number | undefined;
  /** The method takes a client stream: Data frames are its input. */
  readonly takesInput: boolean;

  // The table is the connection's own: dispatch encodes through it.
  declare readonly table: StreamTable<ServerCall>;

  constructor(
    id: number,
    table: StreamTable<ServerCall>,
    readonly host: CallHost,
    readonly reg: Registered,
    readonly service: string,
    private readonly pairs: [string, string][],
    readonly peer: PeerInfo,
  ) {
    super(id, table);
    const kind = reg.method.methodKind;
    this.takesInput = kind === "client_streaming" || kind === "bidi_streaming";
    this.decodeAs = reg.method.input;
  }

  get method(): DescMethod {
    return this.reg.method;
  }

  /** The handler found when the Request arrived; interceptors reach it through the context. */
  get impl(): (m: unknown, c: HandlerContext) => unknown {
    return this.reg.impl as (m: unknown, c: HandlerContext) => unknown;
  }

  get metadata(): Metadata {
    this.#metadata ??= new Metadata(this.pairs);
    return this.#metadata;
  }

  get fullMethod(): string {
    return `/${this.service}/${this.reg.method.name}`;
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.finished) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  timeoutMs(): number | undefined {
    return this.#deadline === undefined ? undefined : Math.max(0, this.#deadline - performance.now());
  }

  /** Starts the call's deadline, `timeoutNano` from now (Go's words when it passes); any length. */
  setDeadline(timeoutNano: number): void {
    const ms = timeoutNanoMs(timeoutNano);
    this.#deadline = performance.now() + ms;
    const expire = () => this.host.failCall(this, new TtrpcError("context deadline exceeded", Code.DeadlineExceeded));
    if (ms <= 0) queueMicrotask(expire);
    else this.#timer = new LongTimer(expire, ms);
  }

  protected override full(): void {
    // Go's words: the status says the data could not be handled.
    this.host.failCall(
      this,
      new TtrpcError("data handling error: ttrpc: stream buffer full", Code.InvalidArgument, {
        reason: ErrorReason.StreamFull,
      }),
    );
  }

  // The handler's signal fires with why the call ended, its input fails, and
  // it stops counting towards the connection.
  protected override onFinish(reason: unknown): void {
    this.#timer?.clear();
    this.fail(reason);
    this.#reason = reason;
    this.#controller?.abort(reason);
    this.host.callEnded(this);
  }
}

/** A handler that gave up because its signal fired reports why the signal fired. */
export function toHandlerError(e: unknown, call: ServerCall): TtrpcError {
  if (call.finished && e instanceof Error && e.name === "AbortError") return TtrpcError.from(call.signal.reason);
  return TtrpcError.from(e);
}
