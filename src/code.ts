/**
 * Status codes of a ttrpc call: the gRPC codes (`google.rpc.Code`), with the
 * same numbers on the wire.
 */
export enum Code {
  /** Not an error; returned on success. */
  Ok = 0,
  /** The operation was cancelled, typically by the caller. */
  Canceled = 1,
  /** Unknown error, or an error that carried no code. */
  Unknown = 2,
  /** The client specified an invalid argument. */
  InvalidArgument = 3,
  /** The deadline expired before the operation could complete. */
  DeadlineExceeded = 4,
  /** Some requested entity was not found. */
  NotFound = 5,
  /** The entity a client attempted to create already exists. */
  AlreadyExists = 6,
  /** The caller may not execute the operation. */
  PermissionDenied = 7,
  /** Some resource has been exhausted, e.g. a message over the size limit. */
  ResourceExhausted = 8,
  /** The system is not in a state required for the operation. */
  FailedPrecondition = 9,
  /** The operation was aborted, typically by a concurrency conflict. */
  Aborted = 10,
  /** The operation was attempted past the valid range. */
  OutOfRange = 11,
  /** The operation is not implemented or supported (unknown service or method). */
  Unimplemented = 12,
  /** An invariant of the underlying system is broken. */
  Internal = 13,
  /** The service is unavailable, e.g. the connection is closed. */
  Unavailable = 14,
  /** Unrecoverable data loss or corruption. */
  DataLoss = 15,
  /** The request lacks valid authentication credentials. */
  Unauthenticated = 16,
}

const names = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
] as const;

/** The canonical name of a code, as gRPC and `google.rpc.Code` spell it: `DEADLINE_EXCEEDED`. */
export function codeName(code: number): string {
  return names[code] ?? `CODE_${code}`;
}

/** The code with the given canonical name (`NOT_FOUND`, case-insensitive), or undefined. */
export function codeFromName(name: string): Code | undefined {
  const i = names.indexOf(name.toUpperCase() as (typeof names)[number]);
  return i < 0 ? undefined : (i as Code);
}
