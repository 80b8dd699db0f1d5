// Prints descriptors in a readable, proto-like form, with their comments.

import {
  ScalarType,
  type DescEnum,
  type DescField,
  type DescFile,
  type DescMessage,
  type DescMethod,
  type DescService,
} from "@bufbuild/protobuf";

/** The call shape of a method, as `list` and `call` name it. */
export function callShape(m: DescMethod): string {
  switch (m.methodKind) {
    case "unary":
      return "unary";
    case "server_streaming":
      return "server-streaming";
    case "client_streaming":
      return "client-streaming";
    case "bidi_streaming":
      return "bidi-streaming";
  }
}

/** A type name relative to a package: `StateRequest` in containerd.task.v2, else the full name. */
function rel(typeName: string, pkg: string): string {
  return pkg !== "" && typeName.startsWith(`${pkg}.`) ? typeName.slice(pkg.length + 1) : typeName;
}

/** `(stream In) returns (Out)` */
export function rpcSignature(m: DescMethod, pkg = m.parent.file.proto.package): string {
  const cs = m.methodKind === "client_streaming" || m.methodKind === "bidi_streaming" ? "stream " : "";
  const ss = m.methodKind === "server_streaming" || m.methodKind === "bidi_streaming" ? "stream " : "";
  return `(${cs}${rel(m.input.typeName, pkg)}) returns (${ss}${rel(m.output.typeName, pkg)})`;
}

type Described = DescService | DescMethod | DescMessage | DescEnum | DescField;

// The source-code-info path of a descriptor (descriptor.proto field numbers).
function sourcePath(d: Described | DescEnum["values"][number]): number[] {
  switch (d.kind) {
    case "service":
      return [6, d.file.proto.service.indexOf(d.proto)];
    case "rpc":
      return [...sourcePath(d.parent), 2, d.parent.proto.method.indexOf(d.proto)];
    case "message":
      return d.parent === undefined
        ? [4, d.file.proto.messageType.indexOf(d.proto)]
        : [...sourcePath(d.parent), 3, d.parent.proto.nestedType.indexOf(d.proto)];
    case "enum":
      return d.parent === undefined
        ? [5, d.file.proto.enumType.indexOf(d.proto)]
        : [...sourcePath(d.parent), 4, d.parent.proto.enumType.indexOf(d.proto)];
    case "field":
      return [...sourcePath(d.parent), 2, d.parent.proto.field.indexOf(d.proto)];
    case "enum_value":
      return [...sourcePath(d.parent), 2, d.parent.values.indexOf(d)];
  }
}

function fileOf(d: Described | DescEnum["values"][number]): DescFile {
  return d.kind === "enum_value" ? d.parent.file : d.kind === "field" || d.kind === "rpc" ? d.parent.file : d.file;
}

/** The leading comment of a descriptor as `// ` lines at `indent`, or "". */
function comment(d: Described | DescEnum["values"][number], indent: string): string {
  const path = sourcePath(d);
  const loc = fileOf(d).proto.sourceCodeInfo?.location.find(
    (l) => l.path.length === path.length && l.path.every((n, i) => n === path[i]),
  );
  const text = loc?.leadingComments?.replace(/\n$/, "");
  if (text === undefined || text.trim() === "") return "";
  return text
    .split("\n")
    .map((l) => `${indent}//${l.length > 0 && !l.startsWith(" ") ? " " : ""}${l.replace(/\s+$/, "")}\n`)
    .join("");
}

function scalarName(t: ScalarType): string {
  return ScalarType[t].toLowerCase();
}

function fieldType(f: DescField, pkg: string): string {
  switch (f.fieldKind) {
    case "scalar":
      return scalarName(f.scalar);
    case "enum":
      return rel(f.enum.typeName, pkg);
    case "message":
      return rel(f.message.typeName, pkg);
    case "list":
      return f.listKind === "scalar"
        ? scalarName(f.scalar)
        : rel((f.listKind === "enum" ? f.enum : f.message).typeName, pkg);
    case "map": {
      const v =
        f.mapKind === "scalar" ? scalarName(f.scalar) : rel((f.mapKind === "enum" ? f.enum : f.message).typeName, pkg);
      return `map<${scalarName(f.mapKey)}, ${v}>`;
    }
  }
}

function fieldLine(f: DescField, pkg: string, indent: string): string {
  let label = "";
  if (f.fieldKind === "list") label = "repeated ";
  else if (f.proto.proto3Optional === true) label = "optional ";
  else if (f.proto.label === 2 /* LABEL_REQUIRED */) label = "required ";
  else if (f.parent.file.proto.syntax === "proto2" || f.parent.file.proto.syntax === "") {
    if (f.fieldKind !== "map" && f.oneof === undefined) label = "optional ";
  }
  const opts = f.deprecated ? " [deprecated = true]" : "";
  return `${comment(f, indent)}${indent}${label}${fieldType(f, pkg)} ${f.name} = ${f.number}${opts};\n`;
}

/** A message definition, nested types included. */
export function formatMessage(m: DescMessage, indent = ""): string {
  const pkg = m.file.proto.package;
  const inner = `${indent}  `;
  let body = "";
  for (const member of m.members) {
    if (member.kind === "field") {
      body += fieldLine(member, pkg, inner);
    } else {
      body += `${inner}oneof ${member.name} {\n`;
      for (const f of member.fields) body += fieldLine(f, pkg, `${inner}  `);
      body += `${inner}}\n`;
    }
  }
  for (const n of m.nestedMessages) body += formatMessage(n, inner);
  for (const e of m.nestedEnums) body += formatEnum(e, inner);
  return `${comment(m, indent)}${indent}message ${m.name} {${body === "" ? "}\n" : `\n${body}${indent}}\n`}`;
}

export function formatEnum(e: DescEnum, indent = ""): string {
  let body = "";
  for (const v of e.values) body += `${comment(v, `${indent}  `)}${indent}  ${v.name} = ${v.number};\n`;
  return `${comment(e, indent)}${indent}enum ${e.name} {\n${body}${indent}}\n`;
}

export function formatMethod(m: DescMethod, indent = ""): string {
  return `${comment(m, indent)}${indent}rpc ${m.name}${rpcSignature(m)};\n`;
}

export function formatService(s: DescService): string {
  return `${comment(s, "")}service ${s.name} {\n${s.methods.map((m) => formatMethod(m, "  ")).join("")}}\n`;
}

/** `// containerd.task.v2.Task: service in runtime/task/v2/shim.proto` */
export function header(name: string, what: string, file: DescFile): string {
  const pkg = file.proto.package === "" ? "" : ` (package ${file.proto.package})`;
  return `// ${name}: ${what} in ${file.proto.name}${pkg}\n`;
}
