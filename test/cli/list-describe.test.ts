// `ttrpc-es list` and `describe` as child processes, on the interop proto and
// on containerd's real protos (2.1, as Debian ships them: test/corpus/setup.sh);
// and the worked example of docs/cli.md: containerd.task.v2.Task/Connect on a
// shim-like server.

import { join } from "node:path";
import { beforeAll, describe, expect, test } from "vitest";
import type { DescService } from "@bufbuild/protobuf";
import { createServer, type ServiceImpl } from "ttrpc-es";
import { loadProtos } from "../../src/cli/proto-loader.js";
import { tempDir } from "../common.js";
import { corpus, ensureCorpus } from "../corpus/corpus.js";
import { useCli, interopProto, runCli } from "./harness.js";

const cli = useCli();

// containerd 2.0-2.2 import their protos by Go import path.
const containerdApi = join(corpus, "containerd-2.1/gocode");
const api = "github.com/containerd/containerd/api";
const googleapis = join(corpus, "googleapis");
const shimProto = ["-I", containerdApi, "-I", googleapis, "--proto", `${api}/runtime/task/v2/shim.proto`];

describe("list", () => {
  test("the services, then one service's methods with their call shapes", async () => {
    const all = await runCli(cli(), ["list", ...interopProto]);
    expect(all.status, all.stderr).toBe(0);
    expect(all.stdout).toBe("ttrpces.interop.v1.Interop\n");
    const one = await runCli(cli(), ["list", ...interopProto, "Interop"]);
    expect(one.status).toBe(0);
    expect(one.stdout.split("\n").map((l) => l.split(/\s+/).slice(0, 2).join(" "))).toEqual([
      "ttrpces.interop.v1.Interop/Echo unary",
      "ttrpces.interop.v1.Interop/EchoEmpty unary",
      "ttrpces.interop.v1.Interop/ServerStream server-streaming",
      "ttrpces.interop.v1.Interop/ClientStream client-streaming",
      "ttrpces.interop.v1.Interop/Bidi bidi-streaming",
      "",
    ]);
    expect(one.stdout).toContain("(stream EchoRequest) returns (stream EchoResponse)\n");
  });

  test("an unknown service exits 4 with close matches", async () => {
    const r = await runCli(cli(), ["list", ...interopProto, "interop.v1.Interp"]);
    expect(r.status).toBe(4);
    expect(r.stderr).toContain("did you mean:\n  ttrpces.interop.v1.Interop\n");
  });

  test("the proto file given as a path below the current directory (no -I)", async () => {
    const r = await runCli(cli(), ["list", "--proto", "interop/v1/interop.proto"], {
      cwd: join(interopProto[1]!, "ttrpces"),
    });
    // Without -I the current directory is the import root, so the file is interop/v1/interop.proto there.
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe("ttrpces.interop.v1.Interop\n");
  });
});

describe("describe", () => {
  test("a message, with its comments", async () => {
    const r = await runCli(cli(), ["describe", ...interopProto, "ttrpces.interop.v1.EchoRequest"]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain("// ttrpces.interop.v1.EchoRequest: message in ttrpces/interop/v1/interop.proto");
    expect(r.stdout).toContain(
      "message EchoRequest {\n  // Echoed back in EchoResponse.payload.\n  bytes payload = 1;\n",
    );
    expect(r.stdout).toContain("  uint32 reply_size = 8;\n}\n");
  });

  test("a method: the rpc, its call shape, its request and response", async () => {
    const r = await runCli(cli(), ["describe", ...interopProto, "Interop.Bidi"]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain("ttrpces.interop.v1.Interop/Bidi: bidi-streaming method");
    expect(r.stdout).toContain("rpc Bidi(stream EchoRequest) returns (stream EchoResponse);\n");
    expect(r.stdout).toContain("message EchoRequest {");
    expect(r.stdout).toContain("message EchoResponse {");
  });

  test("an unknown symbol exits 4 with close matches", async () => {
    const r = await runCli(cli(), ["describe", ...interopProto, "EchoRequst"]);
    expect(r.status).toBe(4);
    expect(r.stderr).toContain("  ttrpces.interop.v1.EchoRequest\n");
  });

  test("describe without a symbol is a usage error", async () => {
    const r = await runCli(cli(), ["describe", ...interopProto]);
    expect(r.status).toBe(2);
  });
});

describe("containerd's protos", () => {
  beforeAll(() => ensureCorpus(), 300_000);

  test("list and describe containerd.task.v2.Task", async () => {
    const services = await runCli(cli(), ["list", ...shimProto]);
    expect(services.status, services.stderr).toBe(0);
    expect(services.stdout).toBe("containerd.task.v2.Task\n");
    const methods = await runCli(cli(), ["list", ...shimProto, "containerd.task.v2.Task"]);
    expect(methods.status).toBe(0);
    expect(methods.stdout.trim().split("\n")).toHaveLength(17);
    expect(methods.stdout).toMatch(
      /^containerd\.task\.v2\.Task\/Connect +unary +\(ConnectRequest\) returns \(ConnectResponse\)$/m,
    );
    expect(methods.stdout).toMatch(
      /^containerd\.task\.v2\.Task\/Kill +unary +\(KillRequest\) returns \(google\.protobuf\.Empty\)$/m,
    );
    const d = await runCli(cli(), ["describe", ...shimProto, "containerd.task.v2.Task"]);
    expect(d.status, d.stderr).toBe(0);
    expect(d.stdout).toContain(
      `// containerd.task.v2.Task: service in ${api}/runtime/task/v2/shim.proto (package containerd.task.v2)\n`,
    );
    expect(d.stdout).toContain("// Shim service is launched for each container");
    expect(d.stdout).toContain("service Task {\n  rpc State(StateRequest) returns (StateResponse);\n");
    expect(d.stdout).toContain("  rpc Connect(ConnectRequest) returns (ConnectResponse);\n");
    expect(d.stdout).toContain("  rpc Shutdown(ShutdownRequest) returns (google.protobuf.Empty);\n}\n");
  });

  test("a message from an imported file, with a map and an Any", async () => {
    const r = await runCli(cli(), [
      "describe",
      "-I",
      containerdApi,
      "--proto",
      `${api}/types/sandbox.proto`,
      "containerd.types.Sandbox",
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain("  map<string, string> labels = 4;\n");
    expect(r.stdout).toContain("  map<string, google.protobuf.Any> extensions = 7;\n");
    expect(r.stdout).toContain("  message Runtime {\n");
  });

  test("introspection.proto needs the googleapis root too", async () => {
    const proto = ["--proto", `${api}/services/introspection/v1/introspection.proto`];
    const without = await runCli(cli(), ["list", "-I", containerdApi, ...proto]);
    expect(without.status).toBe(3);
    expect(without.stderr).toContain('import "google/rpc/status.proto" not found');
    const withRoot = await runCli(cli(), ["list", "-I", containerdApi, "-I", googleapis, ...proto]);
    expect(withRoot.status, withRoot.stderr).toBe(0);
    expect(withRoot.stdout).toBe("containerd.services.introspection.v1.Introspection\n");
  });

  test("the docs/cli.md example: Task/Connect on a shim with --namespace", async () => {
    // A stand-in shim serving containerd.task.v2.Task from the corpus descriptors.
    const { files } = await loadProtos({
      protos: [`${api}/runtime/task/v2/shim.proto`],
      importPaths: [containerdApi],
      protosets: [],
    });
    const dir = tempDir();
    const task = files.getService("containerd.task.v2.Task") as DescService;
    const seen: { id: unknown; namespace: string | undefined }[] = [];
    const impl = {
      connect(req: { id: string }, ctx: { metadata: { get(k: string): string | undefined } }) {
        seen.push({ id: req.id, namespace: ctx.metadata.get("containerd-namespace-ttrpc") });
        return { shimPid: 4242, taskPid: 4243, version: "3" };
      },
    } as unknown as Partial<ServiceImpl<DescService>>;
    const server = createServer().register(task, impl);
    const address = await server.listen(`unix://${join(dir, "shim.sock")}`);
    try {
      const r = await runCli(cli(), [
        "call",
        "--address",
        `unix://${join(dir, "shim.sock")}`,
        "-I",
        containerdApi,
        "--proto",
        `${api}/runtime/task/v2/shim.proto`,
        "--namespace",
        "default",
        "-d",
        '{"id":"redis"}',
        "containerd.task.v2.Task/Connect",
      ]);
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual({ shimPid: 4242, taskPid: 4243, version: "3" });
      expect(seen).toEqual([{ id: "redis", namespace: "default" }]);
      expect(address).toContain("shim.sock");
    } finally {
      await server.close();
    }
  });
});
