// `call --msg-template`: a request message as JSON with every field present,
// nested messages filled in, for the user to edit (grpcurl's -msg-template).

import { create, toJson, type DescMessage, type JsonValue, type Message, type Registry } from "@bufbuild/protobuf";
import { reflect, type ReflectMessage } from "@bufbuild/protobuf/reflect";

/** Fills each unset message field below `r`, stopping at well-known types and at a type already on the path. */
function fill(r: ReflectMessage, path: Set<string>): void {
  for (const f of r.fields) {
    if (f.fieldKind !== "message" || f.oneof !== undefined) continue;
    const name = f.message.typeName;
    if (name.startsWith("google.protobuf.") || path.has(name)) continue;
    const child = r.get(f);
    fill(child, new Set([...path, name]));
    r.set(f, child);
  }
}

/** The template of a message: defaults printed, sub-messages present. */
export function messageTemplate(desc: DescMessage, registry: Registry): JsonValue {
  const message: Message = create(desc);
  fill(reflect(desc, message), new Set([desc.typeName]));
  return toJson(desc, message, { registry, alwaysEmitImplicit: true });
}
