// The services the CLI knows without --proto (containerd task v2/v3, events,
// sandbox, streaming, NRI, Migration), and --proto overriding them.

import { join } from "node:path";
import type { DescService } from "@bufbuild/protobuf";
import { describe, expect, onTestFinished, test } from "vitest";
import { createServer, type ServiceImpl } from "ttrpc-es";
import { builtinProtos } from "../../src/cli/builtin-protos.js";
import { loadProtos } from "../../src/cli/proto-loader.js";
import { tempDir } from "../common.js";
import { interopProto, runCli, useCli } from "./harness.js";

const cli = useCli();

describe("built-in protos", () => {
  test("list without --proto shows the built-in services", async () => {
    const r = await runCli(cli(), ["list"]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim().split("\n")).toEqual([
      "containerd.runtime.sandbox.v1.Sandbox",
      "containerd.services.events.ttrpc.v1.Events",
      "containerd.services.streaming.v1.Streaming",
      "containerd.task.v2.Task",
      "containerd.task.v3.Task",
      "Migration",
      "nri.pkg.api.v1alpha1.HostFunctions",
      "nri.pkg.api.v1alpha1.Plugin",
      "nri.pkg.api.v1alpha1.Runtime",
    ]);
    const forward = await runCli(cli(), ["describe", "containerd.services.events.ttrpc.v1.Events.Forward"]);
    expect(forward.status, forward.stderr).toBe(0);
    expect(forward.stdout).toContain("rpc Forward(ForwardRequest) returns (google.protobuf.Empty);");
  });

  test("--proto adds services: list shows the given ones, call still finds the built-in ones", async () => {
    const r = await runCli(cli(), ["list", ...interopProto]);
    expect(r.stdout).toBe("ttrpces.interop.v1.Interop\n");
    const { files } = await loadProtos({
      protos: ["ttrpces/interop/v1/interop.proto"],
      importPaths: [interopProto[1]!],
      protosets: [],
    });
    expect(files.getService("containerd.task.v3.Task")).toBeDefined();
    expect(files.getService("ttrpces.interop.v1.Interop")).toBeDefined();
  });

  test("a given file defining a built-in type overrides it (and what imports it)", async () => {
    const dir = tempDir();
    const { writeFileSync } = await import("node:fs");
    writeFileSync(
      join(dir, "mine.proto"),
      'syntax = "proto3";\npackage containerd.types;\nmessage Mount { string only_mine = 1; }\n',
    );
    const { files } = await loadProtos({ protos: ["mine.proto"], importPaths: [dir], protosets: [] });
    expect(files.getMessage("containerd.types.Mount")?.fields.map((f) => f.name)).toEqual(["only_mine"]);
    // Task v2 imports containerd's own Mount, so it stands down with it.
    expect(files.getService("containerd.task.v2.Task")).toBeUndefined();
    expect(files.getService("Migration")).toBeDefined();
  });

  test("call Task/Connect with no --proto", async () => {
    const { files } = await loadProtos({ protos: [], importPaths: [], protosets: [] });
    const task = files.getService("containerd.task.v2.Task") as DescService;
    const impl = {
      connect: (req: { id: string }) => ({ shimPid: 42, taskPid: req.id === "redis" ? 43 : 0, version: "2" }),
    } as unknown as Partial<ServiceImpl<DescService>>;
    const server = createServer().register(task, impl);
    const address = await server.listen(`unix://${join(tempDir(), "shim.sock")}`);
    onTestFinished(() => server.close());
    const r = await runCli(cli(), ["call", address, "-d", '{"id":"redis"}', "containerd.task.v2.Task/Connect"]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ shimPid: 42, taskPid: 43, version: "2" });
  });

  test("the built-in set holds each file once, after its imports", async () => {
    const files = await builtinProtos();
    const names = files.map((f) => f.name);
    expect(new Set(names).size).toBe(names.length);
    for (const [i, f] of files.entries()) for (const d of f.dependency) expect(names.indexOf(d)).toBeLessThan(i);
  });
});

describe("Migration with no --proto", () => {
  test("PrepareAndExportSandbox prints the response: the save envelope, its StatedState as JSON", async () => {
    const { startShim, SESSION } = await import("../migration/shim.js");
    const src = await startShim();
    const r = await runCli(cli(), [
      "call",
      src.address,
      "Migration/PrepareAndExportSandbox",
      "-d",
      JSON.stringify({ sessionId: SESSION, initOptions: { memoryTransport: "MEMORY_TRANSPORT_TCP" } }),
    ]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    type Opaque = { "@type": string; value: Record<string, unknown> };
    const { config } = JSON.parse(r.stdout) as { config: { "@type": string; schemaVersion: number; vm: Opaque } };
    // hcsshim's envelope, decoded from the built-in save protos.
    expect(config["@type"]).toBe("type.microsoft.com/hcsshim.controller.migration.save.v1.Payload");
    expect(config.schemaVersion).toBe(1);
    expect(config.vm["@type"]).toBe("sandbox-spec/vm/v2/StatedState/StatedState");
    // The JSON the shim exported, as it travelled (Go's field names).
    expect(JSON.stringify(config.vm.value)).toContain(SESSION);
    expect(JSON.stringify(config.vm.value)).toContain("sandbox-1");
    expect(src.service.session.state).toBe("SourceExported");
  });
});
