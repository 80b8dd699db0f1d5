import type { DescMessage, MessageShape, Registry } from "@bufbuild/protobuf";
import { anyIs, anyUnpack, type Any } from "@bufbuild/protobuf/wkt";
import { Code, codeName } from "./code.js";
import { ErrorReason } from "./error-reason.js";

/** Options of a {@link TtrpcError}. */
export interface TtrpcErrorOptions {
  /** `google.protobuf.Any` details, as `google.rpc.Status.details` carries them. */
  details?: Any[];
  cause?: unknown;
  /** Why the runtime itself failed the call; see {@link ErrorReason}. */
  reason?: ErrorReason;
}

const brand = Symbol.for("ttrpc-es.TtrpcError");

/**
 * The error of a ttrpc call: a status code, a message and optional details,
 * exactly what `google.rpc.Status` in a ttrpc Response carries. Handlers throw
 * it to answer with a status; clients receive it for any failed call.
 */
export class TtrpcError extends Error {
  override name = "TtrpcError";
  readonly code: Code;
  /** The message without the `[CODE]` prefix: what travels on the wire. */
  readonly rawMessage: string;
  readonly details: Any[];
  /**
   * Set when the runtime itself ended the call or the connection (closed by
   * the peer, closed here, server shutting down, stream IDs exhausted,
   * protocol error, stream full): decide on this, never on the message.
   * Undefined for a status a handler sent. It does not travel on the wire.
   */
  readonly reason: ErrorReason | undefined;

  constructor(message: string, code: Code = Code.Unknown, options: TtrpcErrorOptions = {}) {
    super(message === "" ? `[${codeName(code)}]` : `[${codeName(code)}] ${message}`, { cause: options.cause });
    this.code = code;
    this.rawMessage = message;
    this.details = options.details ?? [];
    this.reason = options.reason;
    Object.defineProperty(this, brand, { value: true });
  }

  /**
   * Turns any thrown value into a TtrpcError: a TtrpcError is returned as is,
   * an abort becomes CANCELLED, a timeout DEADLINE_EXCEEDED, anything else the
   * given code with the value's message.
   */
  static from(reason: unknown, code: Code = Code.Unknown): TtrpcError {
    if (reason instanceof TtrpcError) return reason;
    if (reason instanceof Error) {
      if (reason.name === "AbortError") return new TtrpcError(reason.message, Code.Canceled, { cause: reason });
      if (reason.name === "TimeoutError")
        return new TtrpcError(reason.message, Code.DeadlineExceeded, { cause: reason });
      return new TtrpcError(reason.message, code, { cause: reason });
    }
    return new TtrpcError(String(reason), code, { cause: reason });
  }

  /** Decodes the details of the given message type (or all details a registry knows). */
  findDetails<Desc extends DescMessage>(desc: Desc): MessageShape<Desc>[];
  findDetails(registry: Registry): unknown[];
  findDetails(typeOrRegistry: DescMessage | Registry): unknown[] {
    const out: unknown[] = [];
    for (const any of this.details) {
      if ("kind" in typeOrRegistry && typeOrRegistry.kind === "message") {
        if (anyIs(any, typeOrRegistry)) {
          const m = anyUnpack(any, typeOrRegistry);
          if (m !== undefined) out.push(m);
        }
      } else {
        const m = anyUnpack(any, typeOrRegistry as Registry);
        if (m !== undefined) out.push(m);
      }
    }
    return out;
  }

  /**
   * `instanceof` by brand, not by prototype: a second copy of the package (two
   * versions in node_modules) still recognises the errors of the other.
   */
  static override [Symbol.hasInstance](v: unknown): boolean {
    return typeof v === "object" && v !== null && (v as Record<symbol, unknown>)[brand] === true;
  }
}

/**
 * A message refused before it was written, or dropped when it arrived, because
 * it is larger than the limit: RESOURCE_EXHAUSTED, as Go's OversizedMessageErr.
 */
export class OversizedMessageError extends TtrpcError {
  override name = "OversizedMessageError";
  constructor(
    readonly rejectedLength: number,
    readonly maximumLength: number,
  ) {
    super(`message length ${rejectedLength} exceed maximum message size of ${maximumLength}`, Code.ResourceExhausted);
  }
}

// The errors the runtime raises with a reason, in Go's words for each.

/** True when `e` is a TtrpcError the runtime raised for the given reason (any of them when omitted). */
export function hasReason(e: unknown, reason?: ErrorReason): e is TtrpcError {
  return e instanceof TtrpcError && e.reason !== undefined && (reason === undefined || e.reason === reason);
}

/** The connection ended: closed by the peer or here (UNAVAILABLE). */
export function closedError(reason: "peer-closed" | "local-closed", cause?: unknown): TtrpcError {
  return new TtrpcError("ttrpc: closed", Code.Unavailable, { cause, reason });
}

/** The server stopped: `words` are Go's for the situation. */
export function shutdownError(words: string): TtrpcError {
  return new TtrpcError(words, Code.Unavailable, { reason: ErrorReason.ServerShutdown });
}

/** The peer broke the protocol; `code` is what Go answers with there. */
export function protocolError(message: string, code: Code = Code.Internal): TtrpcError {
  return new TtrpcError(message, code, { reason: ErrorReason.ProtocolError });
}

/** A stream's reader fell behind past the limit and its grace period. */
export function streamFullError(): TtrpcError {
  return new TtrpcError("ttrpc: stream buffer full", Code.ResourceExhausted, { reason: ErrorReason.StreamFull });
}
