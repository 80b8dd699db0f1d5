// The cache of what --proto compiles: a repeated command does not run buf, a
// changed file (the target or one it imports) compiles again, a damaged entry
// is ignored and rebuilt, and the cache can be moved or turned off. buf is
// real; the compiler the CLI runs is a script that counts its runs and then
// runs the real buf, so the test sees whether a command compiled.

import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { findBuf } from "../../src/cli/proto-loader.js";
import { tempDir } from "../common.js";
import { runCli, useCli } from "./harness.js";

const cli = useCli();

const B_PROTO = 'syntax = "proto3";\npackage t;\nmessage Req { string name = 1; }\n';

/** A proto dir (a.proto imports b.proto), a counting compiler, and a cache dir. */
function setup() {
  const dir = tempDir();
  const protos = join(dir, "protos");
  const cache = join(dir, "cache");
  mkdirSync(protos);
  writeFileSync(
    join(protos, "a.proto"),
    'syntax = "proto3";\npackage t;\nimport "b.proto";\nservice Svc { rpc Get(Req) returns (Req); }\n',
  );
  writeFileSync(join(protos, "b.proto"), B_PROTO);
  const real = findBuf();
  if (real === undefined) throw new Error("the buf binary of @bufbuild/buf is not installed");
  const runs = join(dir, "runs");
  writeFileSync(runs, "");
  const compiler = join(dir, "counting-buf");
  const quoted = [real.command, ...real.args].map((a) => `'${a}'`).join(" ");
  writeFileSync(compiler, `#!/bin/sh\necho run >> '${runs}'\nexec ${quoted} "$@"\n`);
  chmodSync(compiler, 0o755);
  /** `call --msg-template` on t.Svc/Get: the request template, which shows Req's fields. */
  const template = async (env: Record<string, string> = { TTRPC_ES_CACHE_DIR: cache }) => {
    const r = await runCli(cli(), ["call", "t.Svc/Get", "-I", protos, "--proto", "a.proto", "--msg-template"], {
      env: { TTRPC_ES_BUF: compiler, ...env },
    });
    expect(r.status, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as Record<string, unknown>;
  };
  const compiles = () => readFileSync(runs, "utf8").split("\n").filter(Boolean).length;
  const entries = (at = cache) => (existsSync(at) ? readdirSync(at) : []).map((f) => join(at, f));
  return { dir, protos, cache, compiler, template, compiles, entries };
}

describe("the --proto compile cache", () => {
  test("a second command takes the compile from the cache; a changed import compiles again", async () => {
    const s = setup();
    expect(await s.template()).toEqual({ name: "" });
    expect(s.compiles()).toBe(1);
    expect(s.entries().map((e) => e.endsWith(".json"))).toEqual([true]);
    expect(await s.template()).toEqual({ name: "" });
    expect(s.compiles()).toBe(1);
    // The imported file changes: descriptors from the cache would miss the new field.
    writeFileSync(join(s.protos, "b.proto"), B_PROTO.replace("}", "string tag = 2; }"));
    expect(await s.template()).toEqual({ name: "", tag: "" });
    expect(s.compiles()).toBe(2);
    expect(await s.template()).toEqual({ name: "", tag: "" });
    expect(s.compiles()).toBe(2);
  });

  test("a damaged entry, or another compile's entry under its name, is ignored and rebuilt", async () => {
    const s = setup();
    await s.template();
    const [entry] = s.entries();
    const good = readFileSync(entry!, "utf8");
    // Another compile (b.proto alone) has an entry of its own.
    const other = await runCli(cli(), ["list", "-I", s.protos, "--proto", "b.proto"], {
      env: { TTRPC_ES_BUF: s.compiler, TTRPC_ES_CACHE_DIR: s.cache },
    });
    expect(other.status, other.stderr).toBe(0);
    const otherEntry = s.entries().find((e) => e !== entry)!;
    const damaged = [
      good.slice(0, good.length >> 1), // cut short
      good.replace(/"set":"[^"]*"/, '"set":"bm90IGEgZGVzY3JpcHRvciBzZXQ="'), // valid JSON, not a descriptor set
      readFileSync(otherEntry, "utf8"), // as if the two names collided
    ];
    for (const [i, text] of damaged.entries()) {
      writeFileSync(entry!, text);
      expect(await s.template()).toEqual({ name: "" });
      expect(s.compiles()).toBe(3 + i);
      expect(readFileSync(entry!, "utf8")).toBe(good);
    }
    expect(await s.template()).toEqual({ name: "" });
    expect(s.compiles()).toBe(5);
  });

  test("it lives in $XDG_CACHE_HOME/ttrpc-es unless moved; TTRPC_ES_NO_CACHE=1 turns it off", async () => {
    const s = setup();
    const xdg = join(s.dir, "xdg");
    await s.template({ TTRPC_ES_CACHE_DIR: "", XDG_CACHE_HOME: xdg });
    await s.template({ TTRPC_ES_CACHE_DIR: "", XDG_CACHE_HOME: xdg });
    expect(s.entries(join(xdg, "ttrpc-es"))).toHaveLength(1);
    expect(s.compiles()).toBe(1);
    await s.template({ TTRPC_ES_CACHE_DIR: s.cache, TTRPC_ES_NO_CACHE: "1" });
    await s.template({ TTRPC_ES_CACHE_DIR: s.cache, TTRPC_ES_NO_CACHE: "1" });
    expect(s.compiles()).toBe(3);
    expect(s.entries()).toEqual([]);
  });
});
