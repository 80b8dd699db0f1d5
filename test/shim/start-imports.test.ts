// containerd waits for `start` on every task, and loading protobuf and
// containerd's messages is most of what a shim's start costs (the shim rows
// of `npm run bench`). So what `runShim` loads before it knows the action
// must reach neither: the static import graph from run-shim.ts is walked here,
// type-only imports and dynamic import() aside.
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** The modules `file` loads when it is loaded: relative ones as paths, packages by name. */
function staticImports(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const specs = [...text.matchAll(/^(?:import|export)\s+(?!type\s)(?:[^;]*?\sfrom\s+)?"([^"]+)";/gms)].map(
    (m) => m[1]!,
  );
  return specs.map((s) => (s.startsWith(".") ? resolve(dirname(file), s.replace(/\.js$/, ".ts")) : s));
}

function reachable(entry: string): Set<string> {
  const seen = new Set<string>();
  const todo = [entry];
  while (todo.length > 0) {
    const f = todo.pop()!;
    if (seen.has(f)) continue;
    seen.add(f);
    if (f.startsWith("/")) todo.push(...staticImports(f));
  }
  return seen;
}

describe("what runShim loads before the action", () => {
  it("reaches no protobuf and no generated messages, only Node's modules and the shim's own", () => {
    const loaded = [...reachable(join(repo, "src/shim/run-shim.ts"))];
    expect(loaded.filter((m) => m.includes("@bufbuild") || m.includes("/gen/"))).toEqual([]);
    // The walk itself sees the graph: the start command and the flags are in it.
    expect(loaded).toContain(join(repo, "src/shim/start-command.ts"));
    expect(loaded).toContain(join(repo, "src/shim/flags.ts"));
  });
});
