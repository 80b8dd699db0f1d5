import {
  create,
  createMutableRegistry,
  fromBinary,
  toBinary,
  type DescFile,
  type DescMessage,
  type Message,
  type MessageShape,
  type MutableRegistry,
  type Registry,
} from "@bufbuild/protobuf";
import { AnySchema, type Any } from "@bufbuild/protobuf/wkt";
import { encodeGoJson } from "./go-json.js";
import { defineJsonType, type JsonCodec, type JsonType } from "./json-type.js";
import { TypeUrlError } from "./type-url-error.js";

// A registry holds JSON types of many value types at once; `unknown` would make
// JsonType<T> invariant here and reject every concrete one.
// biome-ignore lint/suspicious/noExplicitAny: heterogeneous collection, see above
type AnyJsonType = JsonType<any>;
// biome-ignore lint/suspicious/noExplicitAny: heterogeneous collection, see above
type AnyJsonCodec = JsonCodec<any>;

/** What a type URL can be asked of: a protobuf message schema or a JSON type. */
// biome-ignore lint/suspicious/noExplicitAny: heterogeneous collection, see above
export type TypeLike = DescMessage | JsonType<any>;

/**
 * A type registry with the semantics of containerd's Go typeurl v2:
 * protobuf messages travel under their bare full name (`containerd.events.TaskExit`,
 * not `type.googleapis.com/...`), registered JSON types under their exact URL,
 * and decoding tries the exact registered URL before the protobuf fallback.
 */
export interface TypeRegistry {
  /**
   * Registers a JSON type at `path.Join(urlParts...)` (Go semantics) and
   * returns it. Registering the same codec at the same URL again returns the
   * existing type; another codec at that URL, or this codec at another URL,
   * throws a {@link TypeUrlError} with reason `conflict` (Go panics).
   */
  registerJson<T>(urlParts: readonly string[], codec: JsonCodec<T>): JsonType<T>;
  /**
   * Registers JSON types (same rules as {@link registerJson}) and, for the
   * protobuf fallback, message schemas, every message of a file, or every
   * message of a protobuf-es registry.
   */
  register(...types: Array<TypeLike | DescFile | Registry>): void;
  /**
   * The type URL `marshalAny` writes: the JSON type's URL, or the bare full
   * name of a message schema or message.
   */
  typeUrlOf(typeOrMessage: TypeLike | Message): string;
  /**
   * Packs a value like Go's `typeurl.MarshalAny`: a protobuf message as
   * binary under its bare full name (its schema must be registered, or passed
   * first), a JSON type's value as Go-style JSON under the type's URL. An
   * `Any` is returned as is.
   */
  marshalAny(message: Message): Any;
  /** Packs a message of the given schema (a plain message shape, no `$typeName` needed). */
  marshalAny<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): Any;
  /** Packs a value of a JSON type under its URL, as Go's typeurl does for JSON-registered types. */
  marshalAny<T>(type: JsonType<T>, value: T): Any;
  /**
   * Unpacks an Any like Go's `typeurl.UnmarshalAny`: a JSON type registered
   * at exactly `any.typeUrl` is parsed and validated; otherwise the protobuf
   * message named by the text after the last `/` is decoded (so
   * `type.googleapis.com/x.Y` and `x.Y` both work). Throws a
   * {@link TypeUrlError} naming the URL when neither is known (`not-found`)
   * or the value does not decode (`decode`).
   */
  unmarshalAny(any: Any): unknown;
  /**
   * Unpacks an Any that must hold the given type, like Go's
   * `typeurl.UnmarshalTo`: `any.typeUrl` must equal `typeUrlOf(type)`
   * exactly, else a {@link TypeUrlError} with reason `mismatch`.
   */
  unmarshalTo<Desc extends DescMessage>(any: Any, schema: Desc): MessageShape<Desc>;
  /** Unpacks an Any into the given JSON type; the URL must be the type's exactly. */
  unmarshalTo<T>(any: Any, type: JsonType<T>): T;
  /**
   * Whether the Any holds the given type or URL, like Go's `typeurl.Is`: an
   * exact comparison, so `type.googleapis.com/x.Y` is not a bare-named `x.Y`.
   */
  is(any: Any, typeOrUrl: TypeLike | string): boolean;
}

/**
 * Creates an empty {@link TypeRegistry}; the arguments are registered as by
 * {@link TypeRegistry.register}. Registries are independent: there is no
 * process-global registry as in Go.
 */
export function createTypeRegistry(...types: Array<TypeLike | DescFile | Registry>): TypeRegistry {
  const json = new JsonTypes();
  const messages = createMutableRegistry();

  function register(...inputs: Array<AnyJsonType | DescMessage | DescFile | Registry>): void {
    for (const input of inputs) registerOne(input, json, messages);
  }

  function typeUrlOf(typeOrMessage: TypeLike | Message): string {
    if ("$typeName" in typeOrMessage) return typeOrMessage.$typeName;
    return typeOrMessage.kind === "json" ? typeOrMessage.typeUrl : typeOrMessage.typeName;
  }

  function marshalAny(first: Message | DescMessage | AnyJsonType, value?: unknown): Any {
    if ("$typeName" in first) {
      if (first.$typeName === AnySchema.typeName) return first as Any;
      const schema = messages.getMessage(first.$typeName);
      if (schema === undefined) {
        throw new TypeUrlError(
          `no schema registered for message ${first.$typeName}; register it or pass it to marshalAny(schema, message)`,
          first.$typeName,
          "not-found",
        );
      }
      return packMessage(schema, first);
    }
    if (first.kind === "message") return packMessage(first, value as Message);
    return packJson(first, value);
  }

  function unmarshalAny(any: Any): unknown {
    const type = json.get(any.typeUrl);
    if (type !== undefined) return decodeJson(type, any.value);
    const schema = messages.getMessage(any.typeUrl.slice(any.typeUrl.lastIndexOf("/") + 1));
    if (schema === undefined)
      throw new TypeUrlError(`type with url ${any.typeUrl}: not found`, any.typeUrl, "not-found");
    return decodeMessage(schema, any);
  }

  function unmarshalTo(any: Any, type: TypeLike): unknown {
    const want = typeUrlOf(type);
    if (any.typeUrl !== want) {
      throw new TypeUrlError(
        `can't unmarshal type ${JSON.stringify(any.typeUrl)} to output ${JSON.stringify(want)}`,
        any.typeUrl,
        "mismatch",
      );
    }
    // As in Go, a URL registered as JSON is decoded as JSON even when asked
    // for with a message schema of the same name.
    const registered = json.get(any.typeUrl);
    if (registered !== undefined) {
      if (type.kind === "message") {
        throw new TypeUrlError(
          `type URL ${any.typeUrl} is registered as JSON, not as ${type.typeName}`,
          any.typeUrl,
          "mismatch",
        );
      }
      return decodeJson(registered, any.value);
    }
    if (type.kind === "json") return decodeJson(type, any.value);
    return decodeMessage(type, any);
  }

  function is(any: Any, typeOrUrl: TypeLike | string): boolean {
    return any.typeUrl === (typeof typeOrUrl === "string" ? typeOrUrl : typeUrlOf(typeOrUrl));
  }

  register(...types);
  return {
    registerJson: <T>(urlParts: readonly string[], codec: JsonCodec<T>) =>
      json.add(defineJsonType(urlParts, codec)) as JsonType<T>,
    register,
    typeUrlOf,
    marshalAny: marshalAny as TypeRegistry["marshalAny"],
    unmarshalAny,
    unmarshalTo: unmarshalTo as TypeRegistry["unmarshalTo"],
    is,
  };
}

/** The JSON types of a registry: one URL per codec, one codec per URL (Go's rules). */
class JsonTypes {
  readonly #byUrl = new Map<string, AnyJsonType>();
  readonly #urlByCodec = new Map<AnyJsonCodec, string>();

  get(url: string): AnyJsonType | undefined {
    return this.#byUrl.get(url);
  }

  add(type: AnyJsonType): AnyJsonType {
    const existing = this.#byUrl.get(type.typeUrl);
    if (existing !== undefined) {
      if (existing.codec === type.codec) return existing;
      throw new TypeUrlError(
        `type URL ${type.typeUrl} is already registered to another type`,
        type.typeUrl,
        "conflict",
      );
    }
    const otherUrl = this.#urlByCodec.get(type.codec);
    if (otherUrl !== undefined) {
      throw new TypeUrlError(
        `type registered with alternate path ${JSON.stringify(otherUrl)} != ${JSON.stringify(type.typeUrl)}`,
        type.typeUrl,
        "conflict",
      );
    }
    this.#byUrl.set(type.typeUrl, type);
    this.#urlByCodec.set(type.codec, type.typeUrl);
    return type;
  }
}

/** A JSON type's value as Go-style JSON under the type's URL. */
function packJson(type: AnyJsonType, value: unknown): Any {
  let text: string;
  try {
    text = encodeGoJson(type.codec.toJson === undefined ? value : type.codec.toJson(value));
  } catch (cause) {
    throw new TypeUrlError(
      `cannot encode a value of type ${type.typeUrl}: ${messageOf(cause)}`,
      type.typeUrl,
      "encode",
      {
        cause,
      },
    );
  }
  return create(AnySchema, { typeUrl: type.typeUrl, value: new TextEncoder().encode(text) });
}

function packMessage(schema: DescMessage, message: Message): Any {
  if (message.$typeName !== schema.typeName) {
    throw new TypeUrlError(
      `message ${message.$typeName} does not match schema ${schema.typeName}`,
      schema.typeName,
      "mismatch",
    );
  }
  return create(AnySchema, { typeUrl: schema.typeName, value: toBinary(schema, message) });
}

function decodeJson<T>(type: JsonType<T>, bytes: Uint8Array): T {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (cause) {
    throw new TypeUrlError(
      `value of type ${type.typeUrl} is not valid JSON: ${messageOf(cause)}`,
      type.typeUrl,
      "decode",
      {
        cause,
      },
    );
  }
  try {
    return type.codec.fromJson(json);
  } catch (cause) {
    throw new TypeUrlError(`value of type ${type.typeUrl} is invalid: ${messageOf(cause)}`, type.typeUrl, "decode", {
      cause,
    });
  }
}

function decodeMessage<Desc extends DescMessage>(schema: Desc, any: Any): MessageShape<Desc> {
  try {
    return fromBinary(schema, any.value);
  } catch (cause) {
    throw new TypeUrlError(
      `value of type ${any.typeUrl} does not decode as ${schema.typeName}: ${messageOf(cause)}`,
      any.typeUrl,
      "decode",
      { cause },
    );
  }
}

/** Registers one input: a JSON type, a message schema, every message of a file or of a protobuf-es registry. */
function registerOne(
  input: AnyJsonType | DescMessage | DescFile | Registry,
  json: JsonTypes,
  messages: MutableRegistry,
): void {
  if (isRegistry(input)) {
    for (const desc of input) if (desc.kind === "message") messages.add(desc);
    return;
  }
  switch (input.kind) {
    case "json":
      json.add(input);
      break;
    case "message":
      messages.add(input);
      break;
    case "file":
      for (const message of input.messages) addNested(message, messages);
      break;
  }
}

// A file's `messages` lists only its top-level messages.
function addNested(message: DescMessage, messages: MutableRegistry): void {
  messages.add(message);
  for (const nested of message.nestedMessages) addNested(nested, messages);
}

function isRegistry(input: AnyJsonType | DescMessage | DescFile | Registry): input is Registry {
  return Symbol.iterator in input;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
