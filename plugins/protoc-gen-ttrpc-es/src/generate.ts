import type { DescFile, DescMessage, DescMethod, DescService } from "@bufbuild/protobuf";
import type { GeneratedFile, Printable, Schema } from "@bufbuild/protoplugin";
import { checkUniqueNames, serviceNames, ttrpcServiceName } from "./names.js";
import type { Options } from "./options.js";
import type { Templates } from "./templates.js";

// Templates produce text, but imports and exports must go through
// protoplugin: only it knows the relative path, the import extension and
// which imported names clash (a clashing import is aliased `Name$1` when the
// file is printed, after the templates ran). So a template never sees an
// imported name: it sees a placeholder that stands for a Printable (an
// ImportSymbol, an export statement, a JSDoc block), and the rendered text is
// split at the placeholders and printed with the Printables in their place.
// The name that gets imported is then by construction the name that is used.
const MARK = "\u0000";
// biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is the marker, chosen because no template emits it
const PLACEHOLDER = /\u0000(\d+)\u0000/;

class Placeholders {
  readonly printables: Printable[] = [];

  add(p: Printable): string {
    this.printables.push(p);
    return `${MARK}${this.printables.length - 1}${MARK}`;
  }

  /** The rendered text as Printables, placeholders replaced. */
  resolve(text: string): Printable[] {
    const parts = text.split(PLACEHOLDER);
    const out: Printable[] = [];
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (i % 2 === 0) {
        if (part.includes(MARK)) {
          throw new Error("a template changed a placeholder: print imported names and docs unchanged");
        }
        if (part !== "") out.push(part);
      } else {
        out.push(this.printables[Number(part)]!);
      }
    }
    return out;
  }
}

/** Generates `<file>_ttrpc.ts` for each file with services. */
export function generateTs(schema: Schema<Options>, templates: Templates): void {
  for (const file of schema.files) {
    if (file.services.length === 0) {
      continue;
    }
    const f = schema.generateFile(`${file.name}_ttrpc.ts`);
    f.preamble(file);
    const placeholders = new Placeholders();
    const context = fileContext(f, file, schema.options, placeholders);
    let text = templates.render(context, { export: (decl, name) => placeholders.add(f.export(decl, name)) });
    text = text.replace(/\n+$/, "");
    f.print(...placeholders.resolve(text));
  }
}

function fileContext(f: GeneratedFile, file: DescFile, options: Options, ph: Placeholders) {
  const runtime = (name: string) => ph.add(f.import(name, options.runtimeImport, true));
  const services = file.services.map((service) => ({
    service,
    names: serviceNames(service, options.prefix, options.suffix),
  }));
  checkUniqueNames(services);
  return {
    file: { name: file.proto.name, package: file.proto.package },
    runtime: {
      Client: runtime("Client"),
      Server: runtime("Server"),
      CallOptions: runtime("CallOptions"),
      HandlerContext: runtime("HandlerContext"),
    },
    protobuf: {
      MessageInitShape: ph.add(f.import("MessageInitShape", "@bufbuild/protobuf", true)),
    },
    services: services.map(({ service, names }) => serviceContext(f, service, names, ph)),
  };
}

function serviceContext(
  f: GeneratedFile,
  service: DescService,
  names: ReturnType<typeof serviceNames>,
  ph: Placeholders,
) {
  return {
    name: service.name,
    typeName: service.typeName,
    ttrpcName: ttrpcServiceName(service),
    deprecated: service.deprecated,
    descriptor: ph.add(f.importSchema(service)),
    doc: ph.add(f.jsDoc(service)),
    names,
    methods: service.methods.map((method) => methodContext(f, method, ph)),
    // The client gets close() unless an rpc already takes that name.
    closable: !service.methods.some((m) => m.localName === "close"),
  };
}

function methodContext(f: GeneratedFile, method: DescMethod, ph: Placeholders) {
  const message = (m: DescMessage) => ({
    typeName: m.typeName,
    shape: ph.add(f.importShape(m)),
    schema: ph.add(f.importSchema(m, true)),
  });
  return {
    name: method.name,
    localName: method.localName,
    kind: method.methodKind,
    unary: method.methodKind === "unary",
    serverStreaming: method.methodKind === "server_streaming",
    clientStreaming: method.methodKind === "client_streaming",
    bidiStreaming: method.methodKind === "bidi_streaming",
    deprecated: method.deprecated,
    doc: ph.add(f.jsDoc(method, "  ")),
    input: message(method.input),
    output: message(method.output),
  };
}
