/**
 * Why a typeurl operation failed:
 * - `not-found`: no JSON type is registered at the URL and no protobuf message
 *   has the name after its last `/`;
 * - `decode`: the value does not decode as the URL's type (bad JSON, failed
 *   validation, bad protobuf binary);
 * - `encode`: the value cannot be encoded (e.g. a number JSON cannot carry);
 * - `mismatch`: the Any holds another type than the one asked for;
 * - `conflict`: a registration clashes with an earlier one;
 * - `invalid`: the argument itself is unusable (e.g. an empty type URL).
 */
export type TypeUrlErrorReason = "not-found" | "decode" | "encode" | "mismatch" | "conflict" | "invalid";

/**
 * The error of the typeurl registry. Its message always names the type URL it
 * is about; `typeUrl` and `reason` carry the same for programs.
 */
export class TypeUrlError extends Error {
  override name = "TypeUrlError";
  readonly typeUrl: string;
  readonly reason: TypeUrlErrorReason;

  constructor(message: string, typeUrl: string, reason: TypeUrlErrorReason, options?: { cause?: unknown }) {
    super(message, options);
    this.typeUrl = typeUrl;
    this.reason = reason;
  }
}
