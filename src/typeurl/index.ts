export { pathClean, pathJoin } from "./path-join.js";
export { encodeGoJson, omitEmpty } from "./go-json.js";
export { defineJsonType } from "./json-type.js";
export type { JsonCodec, JsonType } from "./json-type.js";
export { createTypeRegistry } from "./type-registry.js";
export type { TypeLike, TypeRegistry } from "./type-registry.js";
export { TypeUrlError } from "./type-url-error.js";
export type { TypeUrlErrorReason } from "./type-url-error.js";
