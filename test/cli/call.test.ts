// `ttrpc-es call` as a child process against a real server on a unix socket.

import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { createServer } from "ttrpc-es";
import { Interop, interopImpl, startPair, tempDir } from "../common.js";
import { useCli, interopProto, repoRoot, runCli, startCli } from "./harness.js";

const cli = useCli();

const call = (address: string, method: string, ...rest: string[]) => [
  "call",
  "--address",
  address,
  ...interopProto,
  ...rest,
  method,
];

const lines = (s: string) =>
  s
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe("call shapes", () => {
  test("unary: JSON in, indented JSON out", async () => {
    const { address } = await startPair();
    const r = await runCli(
      cli(),
      call(address, "ttrpces.interop.v1.Interop/Echo", "-d", '{"text":"hi","payload":"aGk="}'),
    );
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ text: "hi", payload: "aGk=" });
    expect(r.stdout).toContain('\n  "text": "hi"');
  });

  test("unary without -d sends an empty message; --emit-defaults prints zero fields", async () => {
    const { address } = await startPair();
    const empty = await runCli(cli(), call(address, "Interop/EchoEmpty"));
    expect(empty.status).toBe(0);
    expect(JSON.parse(empty.stdout)).toEqual({});
    const r = await runCli(cli(), call(address, "Interop/Echo", "--emit-defaults"));
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      payload: "",
      text: "",
      metadata: [],
      deadlineMs: "0",
      seq: 0,
      totalBytes: "0",
    });
  });

  test("SERVICE.METHOD, /SERVICE/METHOD and a unique simple service name", async () => {
    const { address } = await startPair();
    for (const spec of ["ttrpces.interop.v1.Interop.Echo", "/ttrpces.interop.v1.Interop/Echo", "Interop/Echo"]) {
      const r = await runCli(cli(), call(address, spec, "-d", '{"text":"x"}'));
      expect(r.status, `${spec}: ${r.stderr}`).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual({ text: "x" });
    }
  });

  test("server streaming: one JSON object per line, as they arrive", async () => {
    const { address } = await startPair();
    const r = await runCli(cli(), call(address, "Interop/ServerStream", "-d", '{"text":"s","count":3}'));
    expect(r.status).toBe(0);
    expect(r.stdout.split("\n")).toHaveLength(4);
    expect(lines(r.stdout)).toEqual([{ text: "s" }, { text: "s", seq: 1 }, { text: "s", seq: 2 }]);
  });

  test("client streaming: newline-delimited JSON from stdin", async () => {
    const { address } = await startPair();
    const input = '{"payload":"YQ=="}\n\n{"payload":"YmI="}\r\n{"payload":"Y2Nj"}\n';
    const r = await runCli(cli(), call(address, "Interop/ClientStream", "-d", "@-"), { input });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ seq: 3, totalBytes: "6" });
  });

  test("client streaming without -d sends no messages", async () => {
    const { address } = await startPair();
    const r = await runCli(cli(), call(address, "Interop/ClientStream"));
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({});
  });

  test("bidi from a file: NDJSON, an object may span lines", async () => {
    const { address } = await startPair();
    const file = join(tempDir(), "in.ndjson");
    writeFileSync(file, '{"text":"a"}\n{\n  "text": "b"\n}\n{"text":"c"}');
    const r = await runCli(cli(), call(address, "Interop/Bidi", "-d", `@${file}`));
    expect(r.status).toBe(0);
    expect(lines(r.stdout)).toEqual([{ text: "a" }, { text: "b", seq: 1 }, { text: "c", seq: 2 }]);
  });

  test("bidi from stdin is interactive: each line is sent as it is read", async () => {
    const { address } = await startPair();
    const p = startCli(cli(), call(address, "Interop/Bidi", "-d", "@-"));
    p.child.stdin.write('{"text":"one"}\n');
    expect(JSON.parse(await p.nextLine())).toEqual({ text: "one" });
    p.child.stdin.write('{"text":"two"}\n');
    expect(JSON.parse(await p.nextLine())).toEqual({ text: "two", seq: 1 });
    p.child.stdin.end();
    const r = await p.done;
    expect(r.status).toBe(0);
  });
});

describe("metadata and deadlines", () => {
  test("-H repeated (multi-valued, keys lower-cased) and --namespace", async () => {
    const { address } = await startPair();
    const r = await runCli(
      cli(),
      call(address, "Interop/Echo", "-H", "a=1", "-H", "a=2", "-H", "X-Trace: t=1", "--namespace", "k8s.io"),
    );
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout).metadata).toEqual(["a=1", "a=2", "containerd-namespace-ttrpc=k8s.io", "x-trace=t=1"]);
  });

  test("metadata is sent on streaming calls too", async () => {
    const { address } = await startPair({
      impl: {
        async *serverStream(_req, ctx) {
          yield { metadata: [...ctx.metadata].map(([k, v]) => `${k}=${v}`) };
        },
      },
    });
    const r = await runCli(cli(), call(address, "Interop/ServerStream", "--namespace", "default"));
    expect(r.status).toBe(0);
    expect(lines(r.stdout)).toEqual([{ metadata: ["containerd-namespace-ttrpc=default"] }]);
  });

  test("--timeout takes Go durations and is sent as the call's deadline", async () => {
    const { address } = await startPair();
    const r = await runCli(cli(), call(address, "Interop/Echo", "--timeout", "1m30s"));
    expect(r.status).toBe(0);
    const left = Number(JSON.parse(r.stdout).deadlineMs);
    expect(left).toBeGreaterThan(80_000);
    expect(left).toBeLessThanOrEqual(90_000);
  });

  test("an expired deadline exits 64 + DEADLINE_EXCEEDED (68)", async () => {
    const { address } = await startPair();
    const r = await runCli(cli(), call(address, "Interop/Echo", "--timeout", "200ms", "-d", '{"delayMs":60000}'));
    expect(r.status).toBe(68);
    expect(r.stderr).toContain("code = DEADLINE_EXCEEDED");
    expect(r.stdout).toBe("");
  });
});

describe("exit statuses", () => {
  test("RPC error: code name, message and details on stderr, exit 64 + code", async () => {
    const { address } = await startPair();
    const r = await runCli(
      cli(),
      call(address, "Interop/Echo", "-d", '{"failCode":5,"failMessage":"no such task","failWithDetails":true}'),
    );
    expect(r.status).toBe(64 + 5);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("rpc error: code = NOT_FOUND desc = no such task");
    const detail = /detail: (.*)/.exec(r.stderr)?.[1];
    expect(JSON.parse(detail!)).toEqual({
      "@type": "type.googleapis.com/google.protobuf.StringValue",
      value: "no such task",
    });
  });

  test("an error ending a stream after messages: the messages, then exit 64 + code", async () => {
    const { address } = await startPair();
    const r = await runCli(
      cli(),
      call(address, "Interop/ServerStream", "-d", '{"count":2,"failCode":10,"failMessage":"stop"}'),
    );
    expect(lines(r.stdout)).toHaveLength(2);
    expect(r.stderr).toContain("code = ABORTED desc = stop");
    expect(r.status).toBe(64 + 10);
  });

  test("a method the server does not implement: 64 + UNIMPLEMENTED", async () => {
    const dir = tempDir();
    const server = createServer().register(Interop, { echo: interopImpl.echo });
    const address = await server.listen(join(dir, "s.sock"));
    try {
      const r = await runCli(cli(), call(address, "Interop/EchoEmpty"));
      expect(r.status).toBe(64 + 12);
      expect(r.stderr).toContain("UNIMPLEMENTED");
    } finally {
      await server.close();
    }
  });

  test("usage errors exit 2", async () => {
    const cases: string[][] = [
      ["call", ...interopProto, "Interop/Echo"], // no --address
      ["call", "--address", "unix:/x", ...interopProto], // no method
      ["call", "--address", "unix:/x", ...interopProto, "Interop/Echo", "Interop/Echo"],
      ["call", "--address", "unix:/x", ...interopProto, "--bogus", "Interop/Echo"],
      ["call", "--address", "unix:/x", ...interopProto, "--timeout", "5 sec", "Interop/Echo"],
      ["call", "--address", "unix:/x", ...interopProto, "-H", "novalue", "Interop/Echo"],
      ["call", "--address", "http://x", ...interopProto, "Interop/Echo"],
      ["call", "--address", "unix:/x", ...interopProto, "Interop"],
    ];
    for (const args of cases) {
      const r = await runCli(cli(), args);
      expect(r.status, args.join(" ")).toBe(2);
      // One line saying what is wrong, one pointing at --help: not the whole help.
      expect(r.stderr, args.join(" ")).toMatch(/^ttrpc-es call: [^\n]+\nRun 'ttrpc-es call --help' for usage\.\n$/);
    }
    const dur = await runCli(cli(), [
      "call",
      "--address",
      "unix:/x",
      ...interopProto,
      "--timeout",
      "5 sec",
      "Interop/Echo",
    ]);
    expect(dur.stderr).toContain('invalid duration "5 sec"');
  });

  test("--help prints the usage with the exit statuses, exit 0", async () => {
    const r = await runCli(cli(), ["call", "--help"]);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("usage: ttrpc-es call [ADDRESS] SERVICE/METHOD");
    expect(r.stdout).toContain("64+N");
    expect(r.stdout).toContain("unix-abstract:NAME");
  });

  test("unreadable protos exit 3: missing file, compile error, bad protoset, buf missing", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, "bad.proto"), 'syntax = "proto3";\npackage bad;\nmessage A { int32 x = 1 }\n');
    writeFileSync(join(dir, "junk.binpb"), "this is not a descriptor set");
    const base = ["call", "--address", "unix:/x"];
    const missing = await runCli(cli(), [...base, "-I", dir, "--proto", "nope.proto", "A/B"]);
    expect(missing.status).toBe(3);
    expect(missing.stderr).toContain("cannot find nope.proto");
    const bad = await runCli(cli(), [...base, "-I", dir, "--proto", "bad.proto", "A/B"]);
    expect(bad.status).toBe(3);
    expect(bad.stderr).toContain(`${join(dir, "bad.proto")}:3:`);
    const junk = await runCli(cli(), [...base, "--protoset", join(dir, "junk.binpb"), "A/B"]);
    expect(junk.status).toBe(3);
    expect(junk.stderr).toContain("is not a FileDescriptorSet");
    const noBuf = await runCli(cli(), [...base, ...interopProto, "Interop/Echo"], {
      env: { TTRPC_ES_BUF: join(dir, "no-buf") },
    });
    expect(noBuf.status).toBe(3);
    expect(noBuf.stderr).toContain("install @bufbuild/buf");
    expect(noBuf.stderr).toContain("--protoset");
  });

  test("unknown service or method exit 4 and list close matches", async () => {
    const base = ["call", "--address", "unix:/x", ...interopProto];
    const method = await runCli(cli(), [...base, "Interop/echo"]);
    expect(method.status).toBe(4);
    expect(method.stderr).toContain('unknown method "echo"');
    expect(method.stderr).toMatch(/did you mean:\n {2}ttrpces\.interop\.v1\.Interop\/Echo\n/);
    const typo = await runCli(cli(), [...base, "Interop/Ech0Empty"]);
    expect(typo.status).toBe(4);
    expect(typo.stderr).toContain("ttrpces.interop.v1.Interop/EchoEmpty");
    const service = await runCli(cli(), [...base, "ttrpces.interop.v1.Interopp/Echo"]);
    expect(service.status).toBe(4);
    expect(service.stderr).toContain('unknown service "ttrpces.interop.v1.Interopp"');
    expect(service.stderr).toContain("  ttrpces.interop.v1.Interop\n");
  });

  test("malformed JSON exits 5 and says where", async () => {
    const dir = tempDir();
    const base = ["call", "--address", "unix:/x", ...interopProto];
    const syntax = await runCli(cli(), [...base, "-d", '{"text": "a",}', "Interop/Echo"]);
    expect(syntax.status).toBe(5);
    expect(syntax.stderr).toContain('malformed JSON (-d, line 1, column 14): unexpected "}"');
    const file = join(dir, "req.json");
    writeFileSync(file, '{\n  "text": "a",\n  "count": 3\n  "payload": ""\n}\n');
    const multi = await runCli(cli(), [...base, "-d", `@${file}`, "Interop/Echo"]);
    expect(multi.status).toBe(5);
    expect(multi.stderr).toContain(`malformed JSON (${file}, line 4, column 3)`);
    const type = await runCli(cli(), [...base, "-d", '{"count":"many"}', "Interop/Echo"]);
    expect(type.status).toBe(5);
    expect(type.stderr).toContain("not a valid ttrpces.interop.v1.EchoRequest");
    expect(type.stderr).toContain("ttrpces.interop.v1.EchoRequest.count");
    const unknownField = await runCli(cli(), [...base, "-d", '{"txt":"a"}', "Interop/Echo"]);
    expect(unknownField.status).toBe(5);
    expect(unknownField.stderr).toContain('"txt"');
    const two = await runCli(cli(), [...base, "-d", '{"text":"a"}\n{"text":"b"}', "Interop/Echo"]);
    expect(two.status).toBe(5);
    expect(two.stderr).toContain("line 2, column 1");
    expect(two.stderr).toContain("takes one JSON object");
    const noFile = await runCli(cli(), [...base, "-d", `@${join(dir, "missing.json")}`, "Interop/Echo"]);
    expect(noFile.status).toBe(5);
    expect(noFile.stderr).toContain("ENOENT");
  });

  test("malformed JSON in a stream exits 5 naming the line, whatever the server did", async () => {
    const { address } = await startPair();
    const r = await runCli(cli(), call(address, "Interop/ClientStream", "-d", "@-"), {
      input: '{"payload":"YQ=="}\n{"payload": YQ==}\n',
    });
    expect(r.status).toBe(5);
    expect(r.stderr).toContain("malformed JSON (stdin, line 2, column 13)");
    const bidi = await runCli(cli(), call(address, "Interop/Bidi", "-d", "@-"), { input: '{"text":"a"}\n{"seq":1}\n' });
    expect(bidi.status).toBe(5);
    expect(bidi.stderr).toContain("(stdin, line 2) is not a valid ttrpces.interop.v1.EchoRequest");
    expect(lines(bidi.stdout).length).toBeLessThanOrEqual(1);
  });

  test("connection failure exits 6 naming the address", async () => {
    const sock = join(tempDir(), "nobody.sock");
    const r = await runCli(cli(), call(`unix:${sock}`, "Interop/Echo"));
    expect(r.status).toBe(6);
    expect(r.stderr).toContain(`cannot connect to unix:${sock}`);
    expect(r.stderr).toContain("the address right?");
  });

  test("Ctrl-C cancels a running call: exit 130, the server sees the call end", async () => {
    let aborted!: () => void;
    const serverSawAbort = new Promise<void>((r) => (aborted = r));
    const { address } = await startPair({
      impl: {
        async *serverStream(_req, ctx) {
          ctx.signal.addEventListener("abort", () => aborted(), { once: true });
          yield { text: "first" };
          await new Promise<void>((r) => ctx.signal.addEventListener("abort", () => r(), { once: true }));
        },
      },
    });
    const p = startCli(cli(), call(address, "Interop/ServerStream"));
    expect(JSON.parse(await p.nextLine())).toEqual({ text: "first" });
    p.child.kill("SIGINT");
    const r = await p.done;
    expect(r.status).toBe(130);
    expect(r.stderr).toContain("interrupted");
    await serverSawAbort;
  });
});

describe("addresses and descriptor sets", () => {
  test("unix://PATH and a bare path", async () => {
    const { dir } = await startPair();
    const path = join(dir, "ttrpc.sock");
    for (const a of [`unix://${path}`, path]) {
      const r = await runCli(cli(), call(a, "Interop/EchoEmpty"));
      expect(r.status, r.stderr).toBe(0);
    }
  });

  test.runIf(process.platform === "linux")("unix-abstract:NAME", async () => {
    const name = `ttrpc-es-cli-${process.pid}-${Date.now()}`;
    const server = createServer().register(Interop, interopImpl);
    await server.listen(`unix-abstract:${name}`);
    try {
      const r = await runCli(cli(), call(`unix-abstract:${name}`, "Interop/Echo", "-d", '{"text":"abstract"}'));
      expect(r.status, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toEqual({ text: "abstract" });
    } finally {
      await server.close();
    }
  });

  test("--protoset instead of .proto files", async () => {
    const { address } = await startPair();
    const set = join(tempDir(), "interop.binpb");
    const buf = createRequire(import.meta.url).resolve("@bufbuild/buf/bin/buf");
    const b = spawnSync(
      process.execPath,
      [buf, "build", join(repoRoot, "test/proto"), "--as-file-descriptor-set", "-o", set],
      {
        encoding: "utf8",
      },
    );
    expect(b.status, b.stderr).toBe(0);
    const r = await runCli(cli(), [
      "call",
      "--address",
      address,
      "--protoset",
      set,
      "-d",
      '{"text":"set"}',
      "Interop/Echo",
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ text: "set" });
  });
});
