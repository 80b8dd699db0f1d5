/**
 * A type registry compatible with containerd's Go typeurl v2: packs and
 * unpacks `google.protobuf.Any` by type URL, for protobuf messages (bare proto
 * full names) and JSON-encoded types registered at an exact URL.
 *
 * @module ttrpc-es/typeurl
 */
export { createTypeRegistry } from "./type-registry.js";
export type { TypeLike, TypeRegistry } from "./type-registry.js";
export { defineJsonType } from "./json-type.js";
export type { JsonCodec, JsonType } from "./json-type.js";
export { TypeUrlError } from "./type-url-error.js";
export type { TypeUrlErrorReason } from "./type-url-error.js";
