// Messages as JSON for people, never losing an answer: protobuf JSON, except
// that an Any whose type the protos do not define prints as its type URL and
// its bytes (base64), or, when the bytes are JSON (containerd's typeurl JSON
// types, such as hcsshim's StatedState), as that JSON.

import {
  clone,
  create,
  fromBinary,
  toBinary,
  toJson,
  type DescMessage,
  type JsonValue,
  type Message,
  type Registry,
} from "@bufbuild/protobuf";
import { reflect, type ReflectMessage } from "@bufbuild/protobuf/reflect";
import { type Any, anyPack, StringValueSchema } from "@bufbuild/protobuf/wkt";

/** Calls `visit` on every Any set in the message tree (not inside Any values). */
export function visitAnys(r: ReflectMessage, visit: (any: Any) => void): void {
  if (r.desc.typeName === "google.protobuf.Any") {
    visit(r.message as Any);
    return;
  }
  for (const f of r.fields) {
    if (!r.isSet(f)) continue;
    if (f.fieldKind === "message") visitAnys(r.get(f), visit);
    else if (f.fieldKind === "list" && f.listKind === "message") {
      for (const m of r.get(f)) visitAnys(m as ReflectMessage, visit);
    } else if (f.fieldKind === "map" && f.mapKind === "message") {
      for (const m of r.get(f).values()) visitAnys(m as ReflectMessage, visit);
    }
  }
}

/** The name a type URL stands for: what follows the last `/` (Go's typeurl and protobuf alike). */
export function typeNameOf(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf("/") + 1);
}

/** An Any the registry cannot unpack: its JSON bytes parsed, else its bytes as base64. */
export function opaqueAnyJson(any: Any): { "@type": string; value: JsonValue } {
  const text = Buffer.from(any.value).toString("utf8");
  if (/^\s*[[{]/.test(text)) {
    try {
      return { "@type": any.typeUrl, value: JSON.parse(text) as JsonValue };
    } catch {
      // not JSON after all: the bytes below
    }
  }
  return { "@type": any.typeUrl, value: Buffer.from(any.value).toString("base64") };
}

// An unresolvable Any is swapped, in a copy, for a StringValue holding this
// marker and its index; the JSON of that StringValue is then replaced by the
// opaque form. A NUL-led string cannot come from a real peer's text by accident.
const marker = "\u0000ttrpc-es-opaque-any:";

function replaceMarkers(json: JsonValue, opaque: JsonValue[]): JsonValue {
  if (Array.isArray(json)) return json.map((v) => replaceMarkers(v, opaque));
  if (json === null || typeof json !== "object") return json;
  const v = json.value;
  if (typeof v === "string" && v.startsWith(marker) && Object.keys(json).length === 2) {
    return opaque[Number(v.slice(marker.length))] ?? json;
  }
  return Object.fromEntries(Object.entries(json).map(([k, x]) => [k, replaceMarkers(x, opaque)]));
}

/**
 * Swaps each Any the registry cannot unpack for a marker (its opaque form goes
 * to `opaque`), also inside the Anys it can unpack: hcsshim's save envelope
 * carries the StatedState, a JSON typeurl type, in its `vm`.
 */
function hideUnknownAnys(r: ReflectMessage, registry: Registry, opaque: JsonValue[]): void {
  visitAnys(r, (any) => {
    if (any.typeUrl === "") return;
    const known = registry.getMessage(typeNameOf(any.typeUrl));
    const inner = known === undefined ? undefined : decodeOrUndefined(known, any.value);
    if (known !== undefined && inner !== undefined) {
      const before = opaque.length;
      hideUnknownAnys(reflect(known, inner), registry, opaque);
      if (opaque.length > before) any.value = toBinary(known, inner);
      return;
    }
    // Unknown, or bytes that are not the type they claim: printed as they came.
    opaque.push(opaqueAnyJson(any));
    anyPack(StringValueSchema, create(StringValueSchema, { value: `${marker}${opaque.length - 1}` }), any);
  });
}

function decodeOrUndefined(desc: DescMessage, bytes: Uint8Array): Message | undefined {
  try {
    return fromBinary(desc, bytes);
  } catch {
    return undefined;
  }
}

export interface MessageJsonOptions {
  registry: Registry;
  emitDefaults?: boolean;
}

/** The message as protobuf JSON, with Anys of unknown types in their opaque form. */
export function messageJson(desc: DescMessage, message: Message, options: MessageJsonOptions): JsonValue {
  const { registry } = options;
  const copy = clone(desc, message);
  const opaque: JsonValue[] = [];
  hideUnknownAnys(reflect(desc, copy), registry, opaque);
  const json = toJson(desc, copy, { registry, alwaysEmitImplicit: options.emitDefaults === true });
  return opaque.length === 0 ? json : replaceMarkers(json, opaque);
}

/** An Any (an error detail, say) as one line of JSON. */
export function anyJson(any: Any, registry: Registry): string {
  const desc = registry.getMessage("google.protobuf.Any");
  if (desc === undefined) return JSON.stringify(opaqueAnyJson(any));
  return JSON.stringify(messageJson(desc, any, { registry }));
}
