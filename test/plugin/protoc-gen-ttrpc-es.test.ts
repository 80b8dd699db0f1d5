import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import type { InterfaceDeclaration, MethodSignature, SourceFile } from "ts-morph";
import { addToProject, generate, ttrpcFiles, typeErrors } from "./harness.js";

const streamingProto = `
syntax = "proto3";
package shapes.v1;
import "google/protobuf/empty.proto";

// Shapes has one method of each call shape.
service Shapes {
  // Unary says hello.
  rpc Unary(Ping) returns (Pong);
  rpc ServerStream(Ping) returns (stream Pong);
  rpc ClientStream(stream Ping) returns (Pong);
  rpc Bidi(stream Ping) returns (stream Pong);
  rpc Nothing(google.protobuf.Empty) returns (google.protobuf.Empty);
}

message Ping { string text = 1; uint64 seq = 2; }
message Pong { string text = 1; }
`;

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "ttrpc-es-templates-"));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Generates, asserts success, adds everything plus `extra` to the ts-morph project. */
function compile(protos: Record<string, string>, parameter?: string, extra: Record<string, string> = {}) {
  const g = generate(protos, parameter);
  expect(g.error).toBe("");
  const files = new Map([...g.files, ...Object.entries(extra)]);
  const { project, sources } = addToProject(files);
  return { g, project, sources, errors: () => typeErrors(project, sources.values()) };
}

function iface(sf: SourceFile, name: string): InterfaceDeclaration {
  const d = sf.getInterface(name);
  if (d === undefined) throw new Error(`no interface ${name} in ${sf.getBaseName()}`);
  expect(d.isExported()).toBe(true);
  return d;
}

/** `name(param: type, ...): return` as declared. */
function signature(m: MethodSignature): string {
  const params = m
    .getParameters()
    .map((p) => `${p.getName()}${p.isOptional() ? "?" : ""}: ${p.getTypeNodeOrThrow().getText()}`);
  return `${m.getName()}(${params.join(", ")}): ${m.getReturnTypeNodeOrThrow().getText()}`;
}

/** The return type as the checker resolves it. */
function resolvedReturn(m: MethodSignature): string {
  return m.getReturnType().getText(m);
}

describe("protoc-gen-ttrpc-es", () => {
  it("emits a typed client, server interface and registration for all four call shapes", () => {
    const { sources, errors } = compile({ "shapes/v1/shapes.proto": streamingProto });
    expect(errors()).toEqual([]);
    const sf = sources.get("shapes/v1/shapes_ttrpc.ts")!;
    expect(sf).toBeDefined();

    expect(sf.getVariableDeclaration("ShapesServiceName")?.getInitializer()?.getText()).toBe('"shapes.v1.Shapes"');
    expect(iface(sf, "ShapesClient").getMethods().map(signature)).toEqual([
      "unary(request: MessageInitShape<typeof PingSchema>, options?: CallOptions): Promise<Pong>",
      "serverStream(request: MessageInitShape<typeof PingSchema>, options?: CallOptions): AsyncIterable<Pong>",
      "clientStream(requests: AsyncIterable<MessageInitShape<typeof PingSchema>> | Iterable<MessageInitShape<typeof PingSchema>>, options?: CallOptions): Promise<Pong>",
      "bidi(requests: AsyncIterable<MessageInitShape<typeof PingSchema>> | Iterable<MessageInitShape<typeof PingSchema>>, options?: CallOptions): AsyncIterable<Pong>",
      "nothing(request: MessageInitShape<typeof EmptySchema>, options?: CallOptions): Promise<Empty>",
      "close(): void",
      "[Symbol.asyncDispose](): Promise<void>",
    ]);
    // The names resolve to the real types: the messages of shapes_pb.ts, the runtime's CallOptions.
    const unary = iface(sf, "ShapesClient").getMethodOrThrow("unary");
    expect(unary.getParameters().map((p) => p.getType().getText(p))).toEqual([
      "Ping | { readonly $typeName?: never; text?: string; seq?: bigint; }",
      "CallOptions | undefined",
    ]);
    expect(resolvedReturn(unary)).toBe("Promise<Pong>");
    expect(resolvedReturn(iface(sf, "ShapesClient").getMethodOrThrow("nothing"))).toBe(
      'Promise<import("@bufbuild/protobuf").Message<"google.protobuf.Empty">>',
    );
    expect(iface(sf, "ShapesServer").getMethods().map(signature)).toEqual([
      "unary(request: Ping, context: HandlerContext): Promise<MessageInitShape<typeof PongSchema>> | MessageInitShape<typeof PongSchema>",
      "serverStream(request: Ping, context: HandlerContext): AsyncIterable<MessageInitShape<typeof PongSchema>>",
      "clientStream(requests: AsyncIterable<Ping>, context: HandlerContext): Promise<MessageInitShape<typeof PongSchema>>",
      "bidi(requests: AsyncIterable<Ping>, context: HandlerContext): AsyncIterable<MessageInitShape<typeof PongSchema>>",
      "nothing(request: Empty, context: HandlerContext): Promise<MessageInitShape<typeof EmptySchema>> | MessageInitShape<typeof EmptySchema>",
    ]);
    expect(iface(sf, "ShapesServer").getMethodOrThrow("clientStream").getParameters()[1]!.getType().getText()).toMatch(
      /HandlerContext/,
    );
    const create = sf.getFunctionOrThrow("createShapesClient");
    expect(create.isExported()).toBe(true);
    expect(create.getParameters().map((p) => p.getType().getText(p))).toEqual(["Client"]);
    expect(create.getReturnType().getText(create)).toBe("ShapesClient");
    const register = sf.getFunctionOrThrow("registerShapesServer");
    expect(register.getParameters().map((p) => `${p.getName()}: ${p.getType().getText(p)}`)).toEqual([
      "server: Server",
      "impl: Partial<ShapesServer>",
      "options: { name?: string; } | undefined",
    ]);
    // Every method calls the runtime with its own descriptor and shape.
    const body = create.getBodyText() ?? "";
    expect(body).toContain("unary: (request, options) => client.unary(Shapes.method.unary, request, options)");
    expect(body).toContain(
      "serverStream: (request, options) => client.serverStream(Shapes.method.serverStream, request, options)",
    );
    expect(body).toContain(
      "clientStream: (requests, options) => client.clientStream(Shapes.method.clientStream, requests, options)",
    );
    expect(body).toContain("bidi: (requests, options) => client.bidiStream(Shapes.method.bidi, requests, options)");
    // Closing the typed client closes its connection: no raw Client kept beside it.
    expect(body).toContain("close: () => client.close()");
    expect(body).toContain("[Symbol.asyncDispose]: () => client[Symbol.asyncDispose]()");
  });

  it("types calls and implementations: wrong shapes do not compile", () => {
    const use = `
import { createShapesClient, registerShapesServer, type ShapesServer } from "./shapes/v1/shapes_ttrpc.js";
import type { Pong } from "./shapes/v1/shapes_pb.js";
import type { Client, Server } from "ttrpc-es";

export async function use(client: Client, server: Server): Promise<Pong> {
  const c = createShapesClient(client);
  const pong: Pong = await c.unary({ text: "hi", seq: 1n });
  for await (const p of c.serverStream({})) p.text satisfies string;
  await c.clientStream([{ text: "a" }, { text: "b" }]);
  for await (const p of c.bidi((async function* () { yield { text: "x" }; })())) p.text satisfies string;
  // @ts-expect-error seq is a bigint
  await c.unary({ seq: 1 });
  // @ts-expect-error a client stream takes an iterable, not one message
  await c.clientStream({ text: "a" });
  // @ts-expect-error a server stream is not a promise
  (await c.serverStream({})).text;
  const impl: ShapesServer = {
    unary: (req) => ({ text: req.text }),
    async *serverStream(req) { yield { text: req.text }; },
    async clientStream(reqs) { let t = ""; for await (const r of reqs) t += r.text; return { text: t }; },
    async *bidi(reqs) { for await (const r of reqs) yield { text: r.text }; },
    nothing: () => ({}),
  };
  registerShapesServer(server, impl);
  registerShapesServer(server, { unary: () => ({}) }, { name: "other.Name" });
  // @ts-expect-error a unary handler answers a message, not a stream
  registerShapesServer(server, { unary: async function* () { yield {}; } });
  return pong;
}
`;
    const { errors } = compile({ "shapes/v1/shapes.proto": streamingProto }, undefined, { "use.ts": use });
    expect(errors()).toEqual([]);
  });

  it("handles several services per file, nested packages, and files without services", () => {
    const { g, sources, errors } = compile({
      "acme/deep/nested/v1/two.proto": `
syntax = "proto3";
package acme.deep.nested.v1;
import "acme/deep/nested/v1/types.proto";
service First { rpc Get(Thing) returns (Thing); }
service Second { rpc Watch(Thing) returns (stream Thing); }
`,
      "acme/deep/nested/v1/types.proto": `
syntax = "proto3";
package acme.deep.nested.v1;
message Thing { string id = 1; }
`,
    });
    expect(errors()).toEqual([]);
    expect(ttrpcFiles(g)).toEqual(["acme/deep/nested/v1/two_ttrpc.ts"]);
    const sf = sources.get("acme/deep/nested/v1/two_ttrpc.ts")!;
    expect(sf.getText()).toContain('import type { Thing, ThingSchema } from "./types_pb.js";');
    expect(sf.getText()).toContain('import { First, Second } from "./two_pb.js";');
    expect(sf.getVariableDeclaration("FirstServiceName")?.getInitializer()?.getText()).toBe(
      '"acme.deep.nested.v1.First"',
    );
    expect(sf.getVariableDeclaration("SecondServiceName")?.getInitializer()?.getText()).toBe(
      '"acme.deep.nested.v1.Second"',
    );
    for (const name of ["FirstClient", "FirstServer", "SecondClient", "SecondServer"]) iface(sf, name);
    expect(sf.getFunctions().map((f) => f.getName())).toEqual([
      "createFirstClient",
      "registerFirstServer",
      "createSecondClient",
      "registerSecondServer",
    ]);
  });

  it("uses the bare service name when the file has no package", () => {
    const { g, sources, errors } = compile({
      "github.com/acme/migration/migration.proto": `
syntax = "proto3";
service Migration { rpc Prepare(PrepareRequest) returns (PrepareResponse); }
message PrepareRequest { string session_id = 1; }
message PrepareResponse {}
`,
    });
    expect(errors()).toEqual([]);
    const sf = sources.get("github.com/acme/migration/migration_ttrpc.ts")!;
    expect(sf.getVariableDeclaration("MigrationServiceName")?.getInitializer()?.getText()).toBe('"Migration"');
    expect(g.files.get("github.com/acme/migration/migration_ttrpc.ts")).toContain(
      "// @generated from file github.com/acme/migration/migration.proto (syntax proto3)\n",
    );
  });

  it("keeps keyword-named methods, fields and services valid and predictable", () => {
    const { sources, errors } = compile({
      "kw/v1/kw.proto": `
syntax = "proto3";
package kw.v1;
service interface {
  rpc delete(class) returns (.kw.v1.switch);
  rpc Class(class) returns (.kw.v1.switch);
  rpc switch(stream class) returns (stream .kw.v1.switch);
  rpc constructor(class) returns (.kw.v1.switch);
}
message class { string interface = 1; string class = 2; string switch = 3; string delete = 4; }
message switch { bool default = 1; }
`,
    });
    expect(errors()).toEqual([]);
    const sf = sources.get("kw/v1/kw_ttrpc.ts")!;
    expect(sf.getVariableDeclaration("interfaceServiceName")?.getInitializer()?.getText()).toBe('"kw.v1.interface"');
    expect(
      iface(sf, "interfaceClient")
        .getMethods()
        .map((m) => m.getName()),
    ).toEqual(["delete", "class", "switch", "constructor$", "close", "[Symbol.asyncDispose]"]);
    expect(
      iface(sf, "interfaceServer")
        .getMethods()
        .map((m) => m.getName()),
    ).toEqual(["delete", "class", "switch", "constructor$"]);
    expect(sf.getFunction("createInterfaceClient")?.getBodyText()).toContain(
      "client.unary(interface$.method.delete, request, options)",
    );
    expect(sf.getFunction("registerInterfaceServer")).toBeDefined();
    expect(sf.getText()).toContain('import type { class$, classSchema, switch$, switchSchema } from "./kw_pb.js";');
  });

  it("leaves close() out of a client whose service has an rpc Close; await using still works", () => {
    const { sources, errors } = compile({
      "door/v1/door.proto": `
syntax = "proto3";
package door.v1;
message Req {}
service Door { rpc Close(Req) returns (Req); }
`,
    });
    expect(errors()).toEqual([]);
    const sf = sources.get("door/v1/door_ttrpc.ts")!;
    expect(iface(sf, "DoorClient").getMethods().map(signature)).toEqual([
      "close(request: MessageInitShape<typeof ReqSchema>, options?: CallOptions): Promise<Req>",
      "[Symbol.asyncDispose](): Promise<void>",
    ]);
  });

  it("aliases imports that clash with generated or runtime names (Request/Response, a service named Client)", () => {
    const use = `
import { createClientClient } from "./clash/v1/clash_ttrpc.js";
import type { Client } from "ttrpc-es";
export async function use(c: Client): Promise<string> {
  const r = await createClientClient(c).call({ text: "x" });
  return r.echoClient;
}
`;
    const { sources, errors } = compile(
      {
        "clash/v1/clash.proto": `
syntax = "proto3";
package clash.v1;
service Client { rpc Call(Request) returns (Response); }
service Echo { rpc Say(EchoClient) returns (EchoServer); }
message Request { string text = 1; }
message Response { string echo_client = 1; }
message EchoClient { string text = 1; }
message EchoServer { string text = 1; }
`,
      },
      undefined,
      { "use.ts": use },
    );
    expect(errors()).toEqual([]);
    const text = sources.get("clash/v1/clash_ttrpc.ts")!.getText();
    // The runtime's Client is imported first; the service descriptor named Client is aliased.
    expect(text).toContain('import type { CallOptions, Client, HandlerContext, Server } from "ttrpc-es";');
    expect(text).toContain('import { Client as Client$1, Echo } from "./clash_pb.js";');
    expect(text).toContain("client.unary(Client$1.method.call, request, options)");
    expect(text).toContain("server.register(Client$1, impl, options);");
    // Messages named like the exported EchoClient/EchoServer interfaces are aliased, the exports keep their names.
    expect(text).toMatch(/EchoClient as EchoClient\$1/);
    expect(text).toMatch(/EchoServer as EchoServer\$1/);
    expect(text).toContain("export interface EchoClient {");
    expect(text).toContain(
      "say(request: MessageInitShape<typeof EchoClientSchema>, options?: CallOptions): Promise<EchoServer$1>;",
    );
    expect(text).toContain("    request: EchoClient$1,\n    context: HandlerContext,\n");
  });

  it("carries proto comments and deprecation into JSDoc", () => {
    const { sources, errors } = compile({
      "doc/v1/doc.proto": `
syntax = "proto3";
package doc.v1;
// Old is the old service.
// It has two lines of comment, and */ in it.
service Old {
  option deprecated = true;
  // Gone is deprecated.
  rpc Gone(M) returns (M) { option deprecated = true; }
  rpc Kept(M) returns (M); // trailing comment of Kept
}
message M {}
`,
    });
    expect(errors()).toEqual([]);
    const sf = sources.get("doc/v1/doc_ttrpc.ts")!;
    const client = iface(sf, "OldClient");
    expect(client.getJsDocs()[0]!.getInnerText()).toContain(
      "Old is the old service.\nIt has two lines of comment, and *\\/ in it.",
    );
    expect(client.getJsDocs()[0]!.getInnerText()).toContain("@generated from service doc.v1.Old");
    for (const i of [client, iface(sf, "OldServer")]) {
      const gone = i.getMethodOrThrow("gone").getJsDocs()[0]!;
      expect(gone.getDescription().trim()).toBe("Gone is deprecated.");
      expect(gone.getTags().map((t) => t.getTagName())).toEqual(["generated", "deprecated"]);
      const kept = i.getMethodOrThrow("kept").getJsDocs()[0]!;
      expect(kept.getDescription().trim()).toBe("trailing comment of Kept");
      expect(kept.getTags().map((t) => t.getTagName())).toEqual(["generated"]);
    }
  });

  it("applies prefix, suffix and runtime_import to declarations and imports, never to the wire name", () => {
    const { g, errors } = compile(
      { "shapes/v1/shapes.proto": streamingProto },
      "target=ts,import_extension=js,prefix=TTRPC,suffix=V2",
    );
    expect(errors()).toEqual([]);
    const text = g.files.get("shapes/v1/shapes_ttrpc.ts")!;
    expect(text).toContain('export const TTRPCShapesV2ServiceName = "shapes.v1.Shapes";');
    for (const name of [
      "interface TTRPCShapesV2Client ",
      "function createTTRPCShapesV2Client(",
      "interface TTRPCShapesV2Server ",
      "function registerTTRPCShapesV2Server(",
    ]) {
      expect(text).toContain(`export ${name}`);
    }
    const other = generate({ "shapes/v1/shapes.proto": streamingProto }, "target=ts,runtime_import=@acme/ttrpc");
    expect(other.error).toBe("");
    expect(other.files.get("shapes/v1/shapes_ttrpc.ts")).toContain(
      'import type { CallOptions, Client, HandlerContext, Server } from "@acme/ttrpc";',
    );
    expect(other.files.get("shapes/v1/shapes_ttrpc.ts")).toContain('from "./shapes_pb";');
  });

  it("emits precise js and d.ts with target=js+dts", () => {
    const g = generate({ "shapes/v1/shapes.proto": streamingProto }, "target=js+dts,import_extension=js");
    expect(g.error).toBe("");
    expect(ttrpcFiles(g)).toEqual(["shapes/v1/shapes_ttrpc.d.ts", "shapes/v1/shapes_ttrpc.js"]);
    const dts = g.files.get("shapes/v1/shapes_ttrpc.d.ts")!;
    expect(dts).not.toMatch(/\bany\b/);
    expect(dts).toContain('export declare const ShapesServiceName = "shapes.v1.Shapes";');
    expect(dts).toContain("export declare function createShapesClient(client: Client): ShapesClient;");
    const js = g.files.get("shapes/v1/shapes_ttrpc.js")!;
    expect(js).toContain('import { Shapes } from "./shapes_pb.js";');
    expect(js).not.toContain('from "ttrpc-es"'); // type-only imports vanish
  });

  it("is deterministic", () => {
    const a = generate({ "shapes/v1/shapes.proto": streamingProto });
    const b = generate({ "shapes/v1/shapes.proto": streamingProto });
    expect(a.files.get("shapes/v1/shapes_ttrpc.ts")).toBe(b.files.get("shapes/v1/shapes_ttrpc.ts"));
    expect(a.files.get("shapes/v1/shapes_ttrpc.ts")).toMatch(
      /^\/\/ @generated by protoc-gen-ttrpc-es v\d+\.\d+\.\d+ with parameter "target=ts,import_extension=js"\n\/\/ @generated from file shapes\/v1\/shapes.proto \(package shapes.v1, syntax proto3\)\n/,
    );
  });

  it("fails when two services would export the same name", () => {
    const g = generate({
      "dup/v1/dup.proto": `syntax = "proto3"; package dup.v1; message M {}
service Foo { rpc A(M) returns (M); }
service foo { rpc A(M) returns (M); }`,
    });
    expect(g.error).toMatch(
      /services dup\.v1\.Foo and dup\.v1\.foo in dup\/v1\/dup\.proto both generate "createFooClient"; rename one or set prefix= \/ suffix=/,
    );
  });
});

describe("options", () => {
  const protos = { "shapes/v1/shapes.proto": streamingProto };
  it.each([
    [
      "bogus=1",
      /invalid option "bogus=1": unknown option "bogus"; protoc-gen-ttrpc-es accepts templates=.*prefix=.*suffix=.*runtime_import=/,
    ],
    ["prefix=1x", /invalid option "prefix=1x": option prefix: "1x" cannot start an identifier/],
    ["suffix=a-b", /invalid option "suffix=a-b": option suffix: "a-b" is not made of identifier characters/],
    ["runtime_import=", /option runtime_import: "" is not a module specifier/],
    ["templates=/nonexistent/templates", /option templates: \/nonexistent\/templates is not a folder/],
    ["prefix=A,prefix=B", /option prefix is given twice/],
    ["target=java", /invalid option "target=java": target accepts ts, js, dts, or a combination with \+/],
    ["import_extension=cjs", /invalid option "import_extension=cjs": import_extension accepts none, js, ts/],
  ])("rejects %s with a message naming it", (parameter, message) => {
    const g = generate(protos, parameter);
    expect(g.error).toMatch(message);
    expect(ttrpcFiles(g)).toEqual([]);
  });
});

describe("templates", () => {
  const protos = { "shapes/v1/shapes.proto": streamingProto };

  it("takes templates from a user folder, the built-in ones for the rest", () => {
    const dir = tempDir();
    writeFileSync(
      join(dir, "server.hbs"),
      `// custom server for {{typeName}}: {{#each methods}}{{localName}} {{/each}}\n{{export "type" names.server}} = Partial<{{names.client}}>;\n`,
    );
    const g = generate(protos, `target=ts,templates=${dir}`);
    expect(g.error).toBe("");
    const text = g.files.get("shapes/v1/shapes_ttrpc.ts")!;
    expect(text).toContain(
      "// custom server for shapes.v1.Shapes: unary serverStream clientStream bidi nothing \nexport type ShapesServer = Partial<ShapesClient>;",
    );
    expect(text).toContain("export function createShapesClient(");
    expect(text).not.toContain("registerShapesServer");
    expect(text).not.toContain("HandlerContext"); // unused imports are not emitted
  });

  it.each([
    ["{{#each methods}}\n{{/if}}\n", ":3: each doesn't match if"],
    ["{{#each methods}}\n{{localName}\n{{/each}}\n", ":4: Parse error on line 4:"],
  ])("names the template and line of a syntax error: %j", (body, message) => {
    const dir = tempDir();
    writeFileSync(join(dir, "client.hbs"), `// fine\n// fine\n${body}`);
    const g = generate(protos, `target=ts,templates=${dir}`);
    expect(g.error).toContain(`template ${join(dir, "client.hbs")}${message}`);
  });

  it("names the template and line of a missing variable", () => {
    const dir = tempDir();
    writeFileSync(join(dir, "service.hbs"), "// {{typeName}}\n\n// {{ttrpcName}} {{noSuchField}}\n");
    const g = generate(protos, `target=ts,templates=${dir}`);
    expect(g.error).toContain(`template ${join(dir, "service.hbs")}:3: "noSuchField" not defined in [object Object]`);
  });
});
