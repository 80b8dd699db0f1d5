// What a `call` links: a method named in full whose messages hold no Any
// needs only its own file (src/cli/call-protos.ts). These check that the
// lean path still answers as the full one does: error details and Anys of
// built-in types print decoded, and a built-in service works from its own module.

import { join } from "node:path";
import { create, toBinary, type DescService } from "@bufbuild/protobuf";
import { StructSchema, TimestampSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, onTestFinished, test } from "vitest";
import { createServer, type ServiceImpl } from "ttrpc-es";
import { CreateTaskRequestSchema, Task } from "../../gen/containerd/task/v2/shim_pb.js";
import { EchoRequestSchema } from "../../gen/ttrpces/interop/v1/interop_pb.js";
import { PrepareAndExportSandboxResponseSchema } from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_pb.js";
import { builtinProtos, builtinService, BUILTIN_SERVICES } from "../../src/cli/builtin-protos.js";
import { reachesAny } from "../../src/cli/call-protos.js";
import { loadProtos } from "../../src/cli/proto-loader.js";
import { startPair, tempDir } from "../common.js";
import { interopProto, runCli, useCli } from "./harness.js";

const cli = useCli();
const fixtures = join(import.meta.dirname, "fixtures");

async function serve(service: DescService, impl: object): Promise<string> {
  const server = createServer().register(service, impl as Partial<ServiceImpl<DescService>>);
  const address = await server.listen(`unix://${join(tempDir(), "s.sock")}`);
  onTestFinished(() => server.close());
  return address;
}

describe("a call named in full", () => {
  test("error details still print decoded (every type is linked for them)", async () => {
    const { address } = await startPair();
    const r = await runCli(cli(), [
      "call",
      address,
      ...interopProto,
      "ttrpces.interop.v1.Interop/Echo",
      "-d",
      '{"failCode":5,"failMessage":"gone","failWithDetails":true}',
    ]);
    expect(r.status).toBe(64 + 5);
    expect(JSON.parse(/detail: (.*)/.exec(r.stderr)![1]!)).toEqual({
      "@type": "type.googleapis.com/google.protobuf.StringValue",
      value: "gone",
    });
  });

  test("a response that holds an Any of a type its file does not define prints it decoded", async () => {
    // box.proto imports only any.proto: a Timestamp is a well-known type the full registry knows.
    const { files } = await loadProtos({ protos: ["box.proto"], importPaths: [fixtures], protosets: [] });
    const item = {
      typeUrl: "type.googleapis.com/google.protobuf.Timestamp",
      value: toBinary(TimestampSchema, create(TimestampSchema, { seconds: 1767225600n })),
    };
    const address = await serve(files.getService("ttrpces.cli.test.Boxes")!, { get: () => ({ item }) });
    const r = await runCli(cli(), [
      "call",
      address,
      "-I",
      fixtures,
      "--proto",
      "box.proto",
      "ttrpces.cli.test.Boxes/Get",
    ]);
    expect(r.stderr).toBe("");
    expect(JSON.parse(r.stdout)).toEqual({
      item: { "@type": "type.googleapis.com/google.protobuf.Timestamp", value: "2026-01-01T00:00:00Z" },
    });
  });

  test("a built-in service without --proto", async () => {
    const address = await serve(Task, { connect: (req: { id: string }) => ({ shimPid: 42, version: req.id }) });
    const r = await runCli(cli(), ["call", address, "containerd.task.v2.Task/Connect", "-d", '{"id":"v9"}']);
    expect(r.stderr).toBe("");
    expect(JSON.parse(r.stdout)).toEqual({ shimPid: 42, version: "v9" });
  });
});

describe("reachesAny", () => {
  test("finds an Any at any depth, in lists and maps, and ends on recursive types", () => {
    expect(reachesAny(EchoRequestSchema)).toBe(false);
    expect(reachesAny(CreateTaskRequestSchema)).toBe(true); // options: Any
    expect(reachesAny(PrepareAndExportSandboxResponseSchema)).toBe(true);
    expect(reachesAny(StructSchema)).toBe(false); // Struct → Value → ListValue → Value …
  });
});

describe("the built-in service table", () => {
  test("names every built-in service, each found in the module it loads", async () => {
    const services = (await loadProtos({ protos: [], importPaths: [], protosets: [] })).services;
    expect([...BUILTIN_SERVICES].sort()).toEqual(services.map((s) => s.typeName).sort());
    for (const name of BUILTIN_SERVICES) expect((await builtinService(name))?.typeName).toBe(name);
    expect(await builtinService("containerd.task.v2.Nope")).toBeUndefined();
    expect((await builtinProtos()).length).toBeGreaterThan(BUILTIN_SERVICES.length);
  });
});
