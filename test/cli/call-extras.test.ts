// `ttrpc-es call` never loses an answer, and grpcurl's extras: Anys of types
// the protos do not define, bare type URLs kept for containerd 1.6, a closed
// stdout, a gRPC socket, --format-error, --msg-template, --allow-unknown-fields,
// --max-msg-size, -v, --format text and the address as a positional argument.

import { spawn } from "node:child_process";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import type { DescService } from "@bufbuild/protobuf";
import { describe, expect, onTestFinished, test } from "vitest";
import { createServer, type ServiceImpl } from "ttrpc-es";
import { loadProtos } from "../../src/cli/proto-loader.js";
import { startPair, tempDir } from "../common.js";
import { interopProto, runCli, useCli } from "./harness.js";

const cli = useCli();

const fixtures = join(import.meta.dirname, "fixtures");
const boxProto = ["-I", fixtures, "--proto", "box.proto"];

interface AnyInit {
  typeUrl: string;
  value: Uint8Array;
}

/** Serves Boxes: Get answers `answer`; Inspect reports the request's type URLs. */
async function startBoxes(answer: { item?: AnyInit; items?: AnyInit[]; named?: Record<string, AnyInit> }) {
  const { files } = await loadProtos({ protos: ["box.proto"], importPaths: [fixtures], protosets: [] });
  const service = files.getService("ttrpces.cli.test.Boxes") as DescService;
  const impl = {
    get: () => answer,
    inspect: (req: { item?: AnyInit; items: AnyInit[] }) => ({
      typeUrls: [req.item, ...req.items].flatMap((a) => (a === undefined ? [] : [a.typeUrl])),
    }),
  } as unknown as Partial<ServiceImpl<DescService>>;
  const server = createServer().register(service, impl);
  const address = await server.listen(`unix://${join(tempDir(), "boxes.sock")}`);
  onTestFinished(() => server.close());
  return address;
}

const utf8 = (s: string) => new TextEncoder().encode(s);

describe("an Any the protos do not define still prints", () => {
  test("JSON bytes (a typeurl JSON type such as StatedState) print as that JSON; others as base64", async () => {
    const stated = { Sandbox: { ID: "sb-1" }, Containers: [] };
    const address = await startBoxes({
      item: { typeUrl: "sandbox-spec/vm/v2/StatedState/StatedState", value: utf8(JSON.stringify(stated)) },
      items: [{ typeUrl: "example.com/Opaque", value: new Uint8Array([0xff, 1, 2]) }],
      named: { a: { typeUrl: "example.com/Other", value: utf8("{not json") } },
    });
    const r = await runCli(cli(), ["call", address, ...boxProto, "Boxes/Get"]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      item: { "@type": "sandbox-spec/vm/v2/StatedState/StatedState", value: stated },
      items: [{ "@type": "example.com/Opaque", value: "/wEC" }],
      named: { a: { "@type": "example.com/Other", value: Buffer.from("{not json").toString("base64") } },
    });
  });

  test("an Any of a known type prints as protobuf JSON beside an unknown one", async () => {
    const address = await startBoxes({
      item: { typeUrl: "containerd.events.Unknown", value: new Uint8Array([8, 1]) },
      items: [{ typeUrl: "type.googleapis.com/ttrpces.cli.test.Event", value: new Uint8Array([10, 1, 0x78]) }],
    });
    const r = await runCli(cli(), ["call", address, ...boxProto, "Boxes/Get"]);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      item: { "@type": "containerd.events.Unknown", value: "CAE=" },
      items: [{ "@type": "type.googleapis.com/ttrpces.cli.test.Event", id: "x" }],
    });
  });
});

describe("--keep-type-url", () => {
  const data = JSON.stringify({
    item: { "@type": "ttrpces.cli.test.Event", id: "a" },
    items: [{ "@type": "example.org/ttrpces.cli.test.Event", id: "b" }],
  });

  test("sends a bare @type as written (containerd 1.6 registers bare names)", async () => {
    const address = await startBoxes({});
    const r = await runCli(cli(), ["call", address, ...boxProto, "--keep-type-url", "-d", data, "Boxes/Inspect"]);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      typeUrls: ["ttrpces.cli.test.Event", "example.org/ttrpces.cli.test.Event"],
    });
  });

  test("without it, protobuf JSON's type.googleapis.com/ form is sent", async () => {
    const address = await startBoxes({});
    const r = await runCli(cli(), ["call", address, ...boxProto, "-d", data, "Boxes/Inspect"]);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      typeUrls: ["type.googleapis.com/ttrpces.cli.test.Event", "type.googleapis.com/ttrpces.cli.test.Event"],
    });
  });
});

describe("how the CLI ends", () => {
  test("a closed stdout (list | head) ends quietly", async () => {
    const child = spawn(process.execPath, [cli(), "list", ...interopProto, "Interop"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    // The reader is gone before the CLI writes a byte.
    child.stdout.destroy();
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    const status = await new Promise<number | null>((r) => child.on("close", (code) => r(code)));
    expect(stderr).toBe("");
    expect(status).toBe(0);
  });

  test("a gRPC socket is named as one", async () => {
    const sock = join(tempDir(), "grpc.sock");
    const server = new grpc.Server();
    await new Promise<void>((res, rej) =>
      server.bindAsync(`unix:${sock}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res())),
    );
    onTestFinished(() => new Promise<void>((r) => server.tryShutdown(() => r())));
    const r = await runCli(cli(), ["call", `unix:${sock}`, ...interopProto, "Interop/Echo"]);
    expect(r.status).toBe(6);
    expect(r.stderr).toContain(`unix:${sock} is a gRPC socket, not ttrpc`);
  });

  test("--format-error: the status as JSON on stderr", async () => {
    const { address } = await startPair();
    const d = '{"failCode":5,"failMessage":"no such task","failWithDetails":true}';
    const r = await runCli(cli(), ["call", address, ...interopProto, "--format-error", "-d", d, "Interop/Echo"]);
    expect(r.status).toBe(64 + 5);
    expect(JSON.parse(r.stderr)).toEqual({
      code: 5,
      name: "NOT_FOUND",
      message: "no such task",
      details: [{ "@type": "type.googleapis.com/google.protobuf.StringValue", value: "no such task" }],
    });
  });
});

describe("grpcurl's extras", () => {
  test("--msg-template prints the request with every field, no address needed", async () => {
    const r = await runCli(cli(), ["call", ...boxProto, "--msg-template", "Boxes/Get"]);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ items: [], named: {} });
    const echo = await runCli(cli(), ["call", ...interopProto, "--msg-template", "Interop/Echo"]);
    expect(JSON.parse(echo.stdout)).toMatchObject({ text: "", payload: "" });
  });

  test("--allow-unknown-fields ignores fields the request does not define", async () => {
    const { address } = await startPair();
    const d = '{"text":"x","bogus":1}';
    const strict = await runCli(cli(), ["call", address, ...interopProto, "-d", d, "Interop/Echo"]);
    expect(strict.status).toBe(5);
    const lenient = await runCli(cli(), [
      "call",
      address,
      ...interopProto,
      "--allow-unknown-fields",
      "-d",
      d,
      "Interop/Echo",
    ]);
    expect(lenient.status, lenient.stderr).toBe(0);
    expect(JSON.parse(lenient.stdout)).toEqual({ text: "x" });
  });

  test("--max-msg-size bounds the messages the client sends", async () => {
    const { address } = await startPair();
    const d = JSON.stringify({ payload: Buffer.alloc(300).toString("base64") });
    const r = await runCli(cli(), ["call", address, ...interopProto, "--max-msg-size", "100", "-d", d, "Interop/Echo"]);
    expect(r.status).toBe(64 + 8);
    expect(r.stderr).toContain("RESOURCE_EXHAUSTED");
    const bad = await runCli(cli(), ["call", address, ...interopProto, "--max-msg-size", "lots", "Interop/Echo"]);
    expect(bad.status).toBe(2);
  });

  test("-v prints the metadata sent and the status; --address still works", async () => {
    const { address } = await startPair();
    const r = await runCli(cli(), [
      "call",
      "--address",
      address,
      ...interopProto,
      "-v",
      "--namespace",
      "default",
      "Interop/EchoEmpty",
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain("metadata sent: containerd-namespace-ttrpc: default\n");
    expect(r.stderr).toMatch(/^status: OK \(\d+\.\d ms\)$/m);
    expect(JSON.parse(r.stdout)).toEqual({});
  });

  test("the address as a positional argument, but not both ways", async () => {
    const { address } = await startPair();
    const r = await runCli(cli(), ["call", address, ...interopProto, "-d", '{"text":"p"}', "Interop/Echo"]);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ text: "p" });
    const both = await runCli(cli(), ["call", "--address", address, address, ...interopProto, "Interop/Echo"]);
    expect(both.status).toBe(2);
  });

  test("--format text prints the protobuf text format, a blank line after each message", async () => {
    const { address } = await startPair();
    const r = await runCli(cli(), [
      "call",
      address,
      ...interopProto,
      "--format",
      "text",
      "-d",
      '{"text":"t","count":2}',
      "Interop/ServerStream",
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe('text: "t"\n\ntext: "t"\nseq: 1\n\n');
    const bad = await runCli(cli(), ["call", address, ...interopProto, "--format", "yaml", "Interop/Echo"]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('invalid --format "yaml"');
  });
});
