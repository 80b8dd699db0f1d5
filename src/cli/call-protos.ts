// The descriptors one `call` needs, and no more. A method named in full, in
// the files given or in one built-in service, whose request and response
// cannot hold an Any, needs only its own file: its JSON never looks a type up.
// Anything else (a simple service name, an Any to print, a service the given
// files lack) links every file, given and built in, as `list` does. Error
// details are Anys: a failed call links everything then, to print them.

import { createRegistry, type DescMessage, type DescMethod, type Registry } from "@bufbuild/protobuf";
import { builtinService } from "./builtin-protos.js";
import { type GivenProtos, type LoadedProtos, loadGiven, loadProtos, type ProtoSources } from "./proto-loader.js";
import { findMethod, findServiceMethod, splitMethod } from "./symbols.js";

export interface CallProtos {
  method: DescMethod;
  /** What the request and response JSON resolve Any types in. */
  registry: Registry;
  /** Every type the CLI knows (given, built in, well-known): for the Anys of error details. */
  fullRegistry(): Promise<Registry>;
}

/** The message type of a field, when it holds messages (singular, repeated or map values). */
function fieldMessage(f: DescMessage["fields"][number]): DescMessage | undefined {
  if (f.fieldKind === "message") return f.message;
  if (f.fieldKind === "list" && f.listKind === "message") return f.message;
  if (f.fieldKind === "map" && f.mapKind === "message") return f.message;
  return undefined;
}

/** Whether a message of this type can hold a google.protobuf.Any, at any depth. */
export function reachesAny(message: DescMessage, seen = new Set<string>()): boolean {
  if (message.typeName === "google.protobuf.Any") return true;
  if (seen.has(message.typeName)) return false;
  seen.add(message.typeName);
  return message.fields.some((f) => {
    const m = fieldMessage(f);
    return m !== undefined && reachesAny(m, seen);
  });
}

/** The method when its own file is enough (see the top of this file), else undefined. */
async function ownFileMethod(spec: string, given: GivenProtos | undefined): Promise<DescMethod | undefined> {
  const { service, method } = splitMethod(spec);
  const name = service.replace(/^[./]+/, "");
  const svc = given === undefined ? await builtinService(name) : given.registry.getService(name);
  if (svc === undefined) return undefined;
  const m = findMethod(svc, method);
  return reachesAny(m.input) || reachesAny(m.output) ? undefined : m;
}

/** Loads what calling `spec` needs from `src`; failures are CliErrors, as {@link loadProtos}'s. */
export async function callProtos(src: ProtoSources, spec: string): Promise<CallProtos> {
  const given = src.protos.length + src.protosets.length > 0 ? await loadGiven(src) : undefined;
  let full: Promise<LoadedProtos> | undefined;
  const loadFull = (): Promise<LoadedProtos> => {
    full ??= loadProtos(src, given);
    return full;
  };
  const fullRegistry = async () => (await loadFull()).registry;
  const own = await ownFileMethod(spec, given);
  if (own !== undefined) return { method: own, registry: createRegistry(own.parent.file), fullRegistry };
  const { files, registry } = await loadFull();
  return { method: findServiceMethod(files, spec), registry, fullRegistry };
}
