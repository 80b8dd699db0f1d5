// The statuses the reference Migration server answers with, in one place.
// hcsshim wraps every error with errgrpc.ToGRPC: an errdefs class keeps its
// code, a plain Go error becomes UNKNOWN.
import { Code } from "../code.js";
import { TtrpcError } from "../ttrpc-error.js";

export function invalid(message: string): TtrpcError {
  return new TtrpcError(message, Code.InvalidArgument);
}

export function precondition(message: string): TtrpcError {
  return new TtrpcError(message, Code.FailedPrecondition);
}

export function alreadyExists(message: string): TtrpcError {
  return new TtrpcError(message, Code.AlreadyExists);
}

/** What Cancel and Cleanup abort a transfer with. */
export function cancelled(message: string): TtrpcError {
  return new TtrpcError(message, Code.Canceled);
}

/** A plain error in hcsshim (no errdefs class): UNKNOWN on the wire. */
export function plain(message: string, cause?: unknown): TtrpcError {
  return new TtrpcError(message, Code.Unknown, cause === undefined ? undefined : { cause });
}

/** Backend errors keep a TtrpcError's code; anything else is INTERNAL. */
export function backendError(e: unknown, what: string): TtrpcError {
  if (e instanceof TtrpcError) return e;
  return new TtrpcError(`${what}: ${e instanceof Error ? e.message : String(e)}`, Code.Internal, { cause: e });
}

export function sessionMismatch(sessionId: string, active: string): TtrpcError {
  return invalid(`session id ${JSON.stringify(sessionId)} does not match active session ${JSON.stringify(active)}`);
}

const invalidStateBrand = Symbol.for("ttrpc-es.MigrationInvalidStateError");

/**
 * What a backend's `cancel` throws when the transfer already finished and
 * there is nothing left to cancel: hcsshim's HcsCancelLiveMigration answers
 * `ErrInvalidState` then. The session still moves to Cancelled, and the
 * Cancel RPC still fails, with UNKNOWN (a `syscall.Errno` through errgrpc).
 */
export class MigrationInvalidStateError extends TtrpcError {
  override name = "MigrationInvalidStateError";
  readonly [invalidStateBrand] = true;

  constructor(message = "the live migration is in a state that cannot be cancelled") {
    super(message, Code.Unknown);
  }

  // TtrpcError brands every subclass alike; this class needs its own brand.
  static override [Symbol.hasInstance](v: unknown): boolean {
    return typeof v === "object" && v !== null && (v as Record<symbol, unknown>)[invalidStateBrand] === true;
  }
}
