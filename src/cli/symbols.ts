// Finding services, methods and types by the names people type, with "did
// you mean" when they are not there.

import type { DescEnum, DescMessage, DescMethod, DescService, FileRegistry } from "@bufbuild/protobuf";
import { CliError, Exit, suggestionText } from "./cli-support.js";

const lastPart = (name: string) => name.slice(Math.max(name.lastIndexOf("."), name.lastIndexOf("/")) + 1);

/** Every service of the registry, in file order. */
function servicesOf(files: FileRegistry): DescService[] {
  const out: DescService[] = [];
  for (const f of files.files) out.push(...f.services);
  return out;
}

/** Every service of the registry, by full name (as people sort them: case aside). */
export function allServices(files: FileRegistry): DescService[] {
  return servicesOf(files).sort((a, b) => a.typeName.localeCompare(b.typeName));
}

/**
 * The service with this full name, or the only one with this simple name
 * (`Task` for `containerd.task.v2.Task`). Throws `Exit.unknownSymbol` otherwise.
 */
export function findService(files: FileRegistry, name: string): DescService {
  const wanted = name.replace(/^[./]+/, "");
  // Unsorted: the first localeCompare builds an ICU collator, a cost a call need not pay.
  const services = servicesOf(files);
  const exact = services.find((s) => s.typeName === wanted);
  if (exact !== undefined) return exact;
  const bySimple = services.filter((s) => s.name === wanted || s.typeName.endsWith(`.${wanted}`));
  if (bySimple.length === 1) return bySimple[0]!;
  if (bySimple.length > 1) {
    throw new CliError(
      `service "${wanted}" is ambiguous; use the full name:\n${bySimple
        .map((s) => `  ${s.typeName}`)
        .sort((a, b) => a.localeCompare(b))
        .join("\n")}`,
      Exit.unknownSymbol,
    );
  }
  throw new CliError(
    `unknown service "${wanted}"; ${suggestionText(
      wanted,
      allServices(files).map((s) => s.typeName),
      "services",
      lastPart,
    )}`,
    Exit.unknownSymbol,
  );
}

export function findMethod(service: DescService, name: string): DescMethod {
  const m = service.methods.find((x) => x.name === name);
  if (m !== undefined) return m;
  const names = service.methods.map((x) => `${service.typeName}/${x.name}`);
  throw new CliError(
    `unknown method "${name}" in service ${service.typeName}; ${suggestionText(name, names, "methods", lastPart)}`,
    Exit.unknownSymbol,
  );
}

/** Splits `SERVICE/METHOD`, `/SERVICE/METHOD` or `SERVICE.METHOD`; throws a usage error otherwise. */
export function splitMethod(spec: string): { service: string; method: string } {
  const s = spec.replace(/^\/+/, "");
  const slash = s.lastIndexOf("/");
  const cut = slash >= 0 ? slash : s.lastIndexOf(".");
  if (cut <= 0 || cut === s.length - 1) {
    throw new CliError(`"${spec}" is not SERVICE/METHOD (e.g. containerd.task.v2.Task/State)`, Exit.usage);
  }
  return { service: s.slice(0, cut), method: s.slice(cut + 1) };
}

/** Finds the method `SERVICE/METHOD`, `/SERVICE/METHOD` or `SERVICE.METHOD` names. */
export function findServiceMethod(files: FileRegistry, spec: string): DescMethod {
  const { service, method } = splitMethod(spec);
  return findMethod(findService(files, service), method);
}

export type ProtoSymbol = DescService | DescMethod | DescMessage | DescEnum;

/** A service, method (`Svc.Method` or `Svc/Method`), message or enum by full name. */
export function findSymbol(files: FileRegistry, spec: string): ProtoSymbol {
  const name = spec.replace(/^[./]+/, "");
  const direct = files.get(name);
  if (direct !== undefined && direct.kind !== "extension") return direct;
  const cut = Math.max(name.lastIndexOf("/"), name.lastIndexOf("."));
  if (cut > 0) {
    const svc = files.getService(name.slice(0, cut));
    if (svc !== undefined) return findMethod(svc, name.slice(cut + 1));
  }
  const all: string[] = [];
  for (const t of files) if (t.kind !== "extension") all.push(t.typeName);
  for (const s of allServices(files)) for (const m of s.methods) all.push(`${s.typeName}.${m.name}`);
  // A unique simple name is fine too (`Task`, `CreateTaskRequest`).
  const bySimple = all.filter((n) => n.endsWith(`.${name}`));
  if (bySimple.length === 1) return findSymbol(files, bySimple[0]!);
  if (bySimple.length > 1) {
    throw new CliError(
      `symbol "${name}" is ambiguous; use the full name:\n${bySimple.map((n) => `  ${n}`).join("\n")}`,
      Exit.unknownSymbol,
    );
  }
  throw new CliError(
    `unknown symbol "${name}"; ${suggestionText(name, all.sort(), "symbols", lastPart)}`,
    Exit.unknownSymbol,
  );
}
