/** Why a shim command could not run; `code` says which rule it broke. */
export type ShimErrorCode =
  | "bad-flags"
  | "no-namespace"
  | "no-id"
  | "bad-action"
  | "start-failed"
  | "not-a-child"
  | "reaper-unavailable";

/** An error of the shim SDK, with its identity in `code` (never decided by message text). */
export class ShimError extends Error {
  override readonly name = "ShimError";
  constructor(
    readonly code: ShimErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
