import { pathJoin } from "./path-join.js";
import { TypeUrlError } from "./type-url-error.js";

/**
 * How a JSON-encoded type travels in a `google.protobuf.Any`: the counterpart
 * of a Go struct with json tags. `fromJson` is the validator; it receives the
 * parsed JSON and must return a `T` or throw.
 */
export interface JsonCodec<T> {
  /**
   * Turns a value into the JSON value to write. Key order is kept, so list
   * keys in the order of the Go struct's fields and leave empty ones out as
   * `omitempty` would (`undefined`, `null`, `false`, `0`, `""`, empty arrays). Defaults to the value itself.
   */
  toJson?(value: T): unknown;
  /** Checks parsed JSON and turns it into a `T`; throws when it is not one. */
  fromJson(json: unknown): T;
}

/**
 * A JSON-encoded type bound to its type URL: what Go's
 * `typeurl.Register(&T{}, parts...)` records. The codec is the type's
 * identity: a registry refuses the same codec at two URLs.
 */
export interface JsonType<T> {
  readonly kind: "json";
  /** `pathJoin(...urlParts)`, the exact URL looked up when decoding. */
  readonly typeUrl: string;
  readonly codec: JsonCodec<T>;
}

/**
 * Defines a JSON type at the URL Go's `path.Join(urlParts...)` gives, e.g.
 * `["sandbox-spec/vm/v2/StatedState", "StatedState"]` →
 * `sandbox-spec/vm/v2/StatedState/StatedState`. Register it with
 * {@link TypeRegistry.register} or use `registerJson` to do both.
 */
export function defineJsonType<T>(urlParts: readonly string[], codec: JsonCodec<T>): JsonType<T> {
  const typeUrl = pathJoin(...urlParts);
  if (typeUrl === "") {
    throw new TypeUrlError(`type URL from parts ${JSON.stringify(urlParts)} is empty`, typeUrl, "invalid");
  }
  return { kind: "json", typeUrl, codec };
}
