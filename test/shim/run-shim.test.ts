// The shim binary's protocol: `start` run as containerd runs it (a real
// process, the server spawned detached, both stdin formats), then the
// server's Task v2 and v3, its shutdown, and `delete`, `-info` and `-v`.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer as createNetServer } from "node:net";
import { join } from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { connect } from "ttrpc-es";
import { parseShimArgs, runShim, type ShimIo, ShimError } from "ttrpc-es/shim";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import {
  BootstrapParamsSchema,
  BootstrapResultSchema,
} from "../../gen/containerd/runtime/bootstrap/v1/bootstrap_pb.js";
import { Task as TaskV2 } from "../../gen/containerd/task/v2/shim_pb.js";
import { DeleteResponseSchema as DeleteResponseV3, Task as TaskV3 } from "../../gen/containerd/task/v3/shim_pb.js";
import { RuntimeInfoSchema } from "../../gen/containerd/types/introspection_pb.js";
import { compileForTest } from "../cli/harness.js";
import { tempDir } from "../common.js";
import { gone } from "./processes.js";

let shim: { main: string; cleanup: () => void };
beforeAll(() => {
  const { out, cleanup } = compileForTest(
    ["test/shim/fixtures/example-shim.ts"],
    ["test/shim/fixtures/example-shim.js"],
  );
  shim = { main: join(out, "test/shim/fixtures/example-shim.js"), cleanup };
}, 120_000);
afterAll(() => shim.cleanup());

const GRPC = "/run/containerd/containerd.sock";
const FLAGS = ["-namespace", "ns1", "-address", GRPC, "-publish-binary", "/usr/bin/containerd", "-id", "t1"];

/** Runs the shim binary as containerd does: in the bundle, stdin given, stdout and the exit code taken. */
function runBinary(args: string[], stdin: Uint8Array, cwd: string, env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [shim.main, ...args], { cwd, env: { ...process.env, ...env } });
  const out: Buffer[] = [];
  let err = "";
  child.stdout.on("data", (c: Buffer) => out.push(c));
  child.stderr.setEncoding("utf8").on("data", (c: string) => {
    err += c;
  });
  child.stdin.end(stdin);
  return new Promise<{ code: number | null; stdout: Buffer; stderr: string }>((resolve) =>
    child.once("close", (code) => resolve({ code, stdout: Buffer.concat(out), stderr: err })),
  );
}

/** Kills the detached server after the test, should the test fail before its Shutdown. */
function reapLater(pid: number): void {
  onTestFinished(() => {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone, as it should be
    }
  });
}

describe("shim start", () => {
  it("spawns the server on Go's socket name, answers 2.3's BootstrapParams in binary, and serves Task v3 and v2", async () => {
    const bundle = tempDir();
    const socketDir = join(tempDir(), "s");
    const params = create(BootstrapParamsSchema, {
      instanceId: "t1",
      namespace: "ns1",
      containerdGrpcAddress: GRPC,
      containerdTtrpcAddress: `${GRPC}.ttrpc`,
      socketDir,
    });
    const r = await runBinary([...FLAGS, "start"], toBinary(BootstrapParamsSchema, params), bundle);
    expect(r.code, r.stderr).toBe(0);
    const result = fromBinary(BootstrapResultSchema, r.stdout);
    // Go: unix://<dir>/<hex sha256 of filepath.Join(address, namespace, id)>
    const hash = createHash("sha256").update(`${GRPC}/ns1/t1`).digest("hex");
    expect(result).toMatchObject({ version: 3, protocol: "ttrpc", address: `unix://${socketDir}/${hash}` });
    expect(readFileSync(join(bundle, "address"), "utf8")).toBe(result.address);
    const path = join(socketDir, hash);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(socketDir).mode & 0o777).toBe(0o700);

    const client = await connect(`unix:${path}`);
    onTestFinished(() => client.close());
    const v3 = await client.unary(TaskV3.method.connect, { id: "t1" });
    reapLater(v3.shimPid);
    const v2 = await client.unary(TaskV2.method.connect, { id: "t1" });
    expect(v3.shimPid).toBe(v2.shimPid);
    expect(v3.version).toBe("1.2.3");

    // A second start for the same task finds the server and reuses it.
    const again = await runBinary([...FLAGS, "start"], toBinary(BootstrapParamsSchema, params), bundle);
    expect(fromBinary(BootstrapResultSchema, again.stdout).address).toBe(result.address);
    expect((await client.unary(TaskV3.method.connect, { id: "t1" })).shimPid).toBe(v3.shimPid);

    // A task is live: Shutdown keeps the server; after Delete, Shutdown ends it.
    await client.unary(TaskV2.method.create, { id: "t1", bundle });
    await client.unary(TaskV2.method.shutdown, { id: "t1" });
    expect((await client.unary(TaskV3.method.connect, { id: "t1" })).shimPid).toBe(v3.shimPid);
    await client.unary(TaskV3.method.delete, { id: "t1" });
    await client.unary(TaskV3.method.shutdown, { id: "t1" });
    await gone(v3.shimPid);
    expect(existsSync(path)).toBe(false);
  });

  it("answers containerd up to 2.2 (no BootstrapParams) with JSON version 2, and 1.6 with the bare address", async () => {
    const bundle = tempDir();
    // Without socket_dir the socket would go to /run/containerd/s; -address picks a name no containerd uses.
    const flags = ["-namespace", "ns1", "-address", `${tempDir()}/c.sock`, "-id", `t-${process.pid}`];
    const json = await runBinary([...flags, "start"], new Uint8Array(), bundle, { MAX_SHIM_VERSION: "2" });
    expect(json.code, json.stderr).toBe(0);
    const reply = JSON.parse(json.stdout.toString()) as { version: number; address: string; protocol: string };
    expect(reply).toMatchObject({ version: 2, protocol: "ttrpc" });
    expect(reply.address).toMatch(/^unix:\/\/\/run\/containerd\/s\/[0-9a-f]{64}$/);
    const bare = await runBinary([...flags, "start"], new Uint8Array(), bundle);
    expect(bare.stdout.toString()).toBe(reply.address);
    const client = await connect(reply.address.replace("unix://", "unix:"));
    const { shimPid } = await client.unary(TaskV2.method.connect, { id: "x" });
    reapLater(shimPid);
    await client.unary(TaskV2.method.shutdown, { id: "x" });
    client.close();
    await gone(shimPid);
  });
});

/** An in-process ShimIo: the bytes a command prints, and the stdin it is given. */
function memoryIo(cwd: string, stdin = new Uint8Array()) {
  const out: Buffer[] = [];
  let err = "";
  const io: ShimIo = {
    readStdin: async () => stdin,
    writeStdout: (b) => void out.push(Buffer.from(b)),
    writeStderr: (t) => {
      err += t;
    },
    env: {},
    cwd,
    self: ["node", "/opt/containerd-shim-example-v1"],
  };
  return { io, stdout: () => Buffer.concat(out), stderr: () => err };
}

const definition = { name: "io.containerd.example.v1", version: "1.2.3", revision: "abc", task: () => ({}) };

describe("shim delete, -info, -v", () => {
  it("delete prints a binary DeleteResponse from the definition's cleanup, and removes the dead server's socket", async () => {
    const bundle = tempDir();
    const sock = join(bundle, "dead.sock");
    // The dead server's socket file (a live listener makes one; delete removes it as Go's RemoveSocket does).
    const net = createNetServer().listen(sock);
    await new Promise((resolve) => net.once("listening", resolve));
    writeFileSync(join(bundle, "address"), `unix://${sock}`);
    const exitedAt = new Date("2026-01-02T03:04:05.006Z");
    const { io, stdout } = memoryIo("/");
    const seen: string[] = [];
    const code = await runShim(
      {
        ...definition,
        delete: (ctx) => {
          seen.push(`${ctx.namespace} ${ctx.id} ${ctx.bundle}`);
          return { pid: 42, exitStatus: 137, exitedAt };
        },
      },
      [...FLAGS, "-bundle", bundle, "delete"],
      io,
    );
    net.close();
    expect(code).toBe(0);
    expect(seen).toEqual([`ns1 t1 ${bundle}`]);
    const res = fromBinary(DeleteResponseV3, stdout());
    expect({ pid: res.pid, exitStatus: res.exitStatus }).toEqual({ pid: 42, exitStatus: 137 });
    expect(timestampDate(res.exitedAt!)).toEqual(exitedAt);
    expect(existsSync(sock)).toBe(false);
  });

  it("delete without a cleanup reports the task killed (128 + SIGKILL)", async () => {
    const { io, stdout } = memoryIo(tempDir());
    expect(await runShim(definition, [...FLAGS, "delete"], io)).toBe(0);
    expect(fromBinary(DeleteResponseV3, stdout()).exitStatus).toBe(137);
  });

  it("-info prints a binary RuntimeInfo, by default the name and version, else the definition's", async () => {
    const plain = memoryIo("/");
    expect(await runShim(definition, ["-info"], plain.io)).toBe(0);
    expect(fromBinary(RuntimeInfoSchema, plain.stdout())).toMatchObject({
      name: "io.containerd.example.v1",
      version: { version: "1.2.3", revision: "abc" },
    });
    const options = new Uint8Array([1, 2, 3]);
    const custom = memoryIo("/", options);
    const info = (o: Uint8Array) => ({
      name: "x",
      annotations: { "containerd.io/runtime-allow-mounts": `${o.length}` },
    });
    expect(await runShim({ ...definition, info }, ["-info"], custom.io)).toBe(0);
    expect(fromBinary(RuntimeInfoSchema, custom.stdout()).annotations).toEqual({
      "containerd.io/runtime-allow-mounts": "3",
    });
  });

  it("-v prints the version as Go's shims do", async () => {
    const { io, stdout } = memoryIo("/");
    expect(await runShim(definition, ["-v"], io)).toBe(0);
    expect(stdout().toString()).toMatch(/^containerd-shim-example-v1:\n {2}Version: {2}1\.2\.3\n {2}Revision: abc\n/);
  });

  it("refuses a missing namespace or id, and unknown flags and actions, on stderr with exit code 1", async () => {
    for (const argv of [["-id", "x", "start"], ["-namespace", "n", "start"], ["-bogus"], [...FLAGS, "stop"]]) {
      const { io, stderr } = memoryIo("/");
      expect(await runShim(definition, argv, io)).toBe(1);
      expect(stderr()).toMatch(/^containerd-shim-example-v1: /);
    }
    expect(() => parseShimArgs(["-namespace"])).toThrow(ShimError);
    expect(parseShimArgs(["--namespace=a", "-id", "b", "-debug=true", "delete"])).toMatchObject({
      namespace: "a",
      id: "b",
      debug: true,
      action: "delete",
    });
  });
});
