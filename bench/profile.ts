// Summarizes V8 .cpuprofile files (from `npm run bench -- --cpu-prof [DIR]`):
// the functions with the most self time, per benchmark and per process role.
// Standalone: `node dist-bench/bench/profile.js DIR [TOP]`.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function findProfiles(dir: string): string[] {
  const found: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) found.push(...findProfiles(p));
    else if (name.endsWith(".cpuprofile")) found.push(p);
  }
  return found;
}

function label(n: ProfileNode): string {
  const { functionName, url, lineNumber } = n.callFrame;
  const file = url === "" ? "" : url.replace(/^file:\/\//, "").replace(/^.*?\/(node_modules\/|dist\/)/, "$1");
  return `${functionName === "" ? "(anonymous)" : functionName}${file === "" ? "" : ` ${file}:${lineNumber + 1}`}`;
}

/** Self time per function, summed over the profiles given. */
function selfTimes(files: string[]): { total: number; byFn: Map<string, number> } {
  const byFn = new Map<string, number>();
  let total = 0;
  for (const f of files) {
    const prof = JSON.parse(readFileSync(f, "utf8")) as CpuProfile;
    const byId = new Map(prof.nodes.map((n) => [n.id, n]));
    for (let i = 0; i < prof.samples.length; i++) {
      const n = byId.get(prof.samples[i]!);
      const dt = prof.timeDeltas[i] ?? 0;
      if (n === undefined) continue;
      total += dt;
      const l = label(n);
      byFn.set(l, (byFn.get(l) ?? 0) + dt);
    }
  }
  return { total, byFn };
}

/** A text report: for each benchmark directory and role (client/server), the top self-time functions. */
export function summarizeProfiles(dir: string, top = 15): string {
  const files = findProfiles(dir);
  const groups = new Map<string, string[]>();
  for (const f of files) {
    const g = relative(dir, f).split("/").slice(0, -1).join("/");
    groups.set(g, [...(groups.get(g) ?? []), f]);
  }
  const out: string[] = [`CPU profiles in ${dir} (self time, all runs of each group summed):`];
  for (const [g, fs] of [...groups.entries()].sort()) {
    const { total, byFn } = selfTimes(fs);
    out.push(`\n${g} (${fs.length} profile(s), ${(total / 1e6).toFixed(1)} s sampled)`);
    for (const [fn, t] of [...byFn.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      out.push(`  ${((100 * t) / total).toFixed(1).padStart(5)}%  ${fn}`);
    }
  }
  return out.join("\n");
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const dir = process.argv[2];
  if (dir === undefined) {
    console.error("usage: node dist-bench/bench/profile.js DIR [TOP]");
    process.exit(2);
  }
  console.log(summarizeProfiles(dir, Number(process.argv[3] ?? 15)));
}
