// NRI CreateContainer round trips: a Go runtime on containerd/nri pkg/adaptation
// (test/interop/nri/runtime) calls CreateContainer one at a time on
//   go-adaptation→ttrpc-es   our plugin stub (in this process), and
//   go-adaptation→go-stub    Go's pkg/stub plugin (test/interop/nri/plugin),
// both answering with the same adjustment (one env variable, one annotation).
// Repetitions are interleaved; the peers come from test/interop/nri/setup.sh.
//
//   node dist-bench/bench/nri-bench.js [--reps N] [--seconds S] [--warmup S]
//
// From the bench harness: `import { runNriBench } from "./nri-bench.js"`.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { createStub } from "../src/nri/index.js";
import type { GroupRunner } from "./row-group.js";

const repo = resolve(
  fileURLToPath(new URL(".", import.meta.url)),
  /\/dist(-bench)?\//.test(import.meta.url) ? "../.." : "..",
);
const nriDir = join(repo, "test/interop/nri");

export const NRI_BENCHMARK = "nri-create-container-c1";
export const NRI_IMPLS = ["go-adaptation→ttrpc-es", "go-adaptation→go-stub"] as const;
export type NriImpl = (typeof NRI_IMPLS)[number];

export interface NriBenchRow {
  benchmark: string;
  implementation: NriImpl;
  /** Median calls/s over the repetitions. */
  value: number;
  unit: "calls/s";
  runs: number[];
}

/** The Go runtime: sequential JSON-line commands on stdin, one reply line each on stdout. */
function goRuntime(socket: string) {
  const child = spawn(join(nriDir, ".build/bin/nri-runtime"), ["--socket", socket, "--sync-pods", "0"], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const read = async (op: string): Promise<Record<string, unknown>> => {
    for (;;) {
      const next = await lines.next();
      if (next.done) throw new Error(`nri-runtime exited while waiting for ${op}`);
      const l = JSON.parse(next.value) as Record<string, unknown>;
      if (l.op === op) return l;
    }
  };
  return {
    ready: () => read("ready"),
    async request(command: Record<string, unknown>): Promise<Record<string, unknown>> {
      child.stdin.write(`${JSON.stringify(command)}\n`);
      const reply = await read(String(command.op));
      if (reply.error) throw new Error(`nri-runtime ${command.op}: ${reply.error}`);
      return reply;
    },
    async close() {
      child.stdin.end();
      await exited;
    },
  };
}

async function plugin(impl: NriImpl, socket: string): Promise<() => Promise<void>> {
  if (impl === "go-adaptation→ttrpc-es") {
    const stub = createStub(
      {
        createContainer: (_pod, c) => ({
          adjust: { env: [{ key: "BENCH", value: "1" }], annotations: { "bench/seen": c.id } },
        }),
      },
      { name: "bench", idx: "10", socketPath: socket },
    );
    await stub.start();
    return () => stub.stop();
  }
  const child = spawn(join(nriDir, ".build/bin/nri-go-plugin"), ["--socket", socket, "--quiet"], {
    stdio: ["pipe", "ignore", "inherit"],
  });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  return async () => {
    child.kill("SIGTERM");
    await exited;
  };
}

/** One measurement: calls/s of CreateContainer round trips for `seconds`, after `warmup`. */
async function measure(impl: NriImpl, seconds: number, warmup: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "nri-bench-"));
  const socket = join(dir, "nri.sock");
  const rt = goRuntime(socket);
  let stopPlugin: (() => Promise<void>) | undefined;
  try {
    await rt.ready();
    stopPlugin = await plugin(impl, socket);
    await rt.request({ op: "wait", plugins: 1 });
    const req = {
      pod: { id: "bench-pod", name: "bench", namespace: "default" },
      container: { id: "bench-ctr", podSandboxId: "bench-pod", name: "bench", env: ["A=1"], args: ["/bin/true"] },
    };
    if (warmup > 0) await rt.request({ op: "bench-CreateContainer", seconds: warmup, ...req });
    const r = await rt.request({ op: "bench-CreateContainer", seconds, ...req });
    return Number(r.ops) / Number(r.seconds);
  } finally {
    await rt.close();
    await stopPlugin?.();
    rmSync(dir, { recursive: true, force: true });
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Builds the peers (setup.sh, idempotent), then runs `reps` interleaved repetitions of each pair. */
export async function runNriBench(
  options: { reps?: number; seconds?: number; warmup?: number; log?: (s: string) => void } = {},
): Promise<NriBenchRow[]> {
  const { reps = 3, seconds = 5, warmup = 1, log = () => {} } = options;
  execFileSync("bash", [join(nriDir, "setup.sh")], { stdio: ["ignore", "ignore", "inherit"] });
  const runs = new Map<NriImpl, number[]>(NRI_IMPLS.map((i) => [i, []]));
  for (let rep = 0; rep < reps; rep++) {
    for (const impl of NRI_IMPLS) {
      const v = await measure(impl, seconds, warmup);
      runs.get(impl)!.push(v);
      log(`  ${NRI_BENCHMARK} / ${impl}: ${Math.round(v)} calls/s`);
    }
  }
  return NRI_IMPLS.map((impl) => ({
    benchmark: NRI_BENCHMARK,
    implementation: impl,
    value: Math.round(median(runs.get(impl)!)),
    unit: "calls/s",
    runs: runs.get(impl)!.map(Math.round),
  }));
}

/** The rows as a small table, with the ratio ttrpc-es ÷ Go. */
export function formatNriBench(rows: NriBenchRow[]): string {
  const [es, go] = NRI_IMPLS.map((i) => rows.find((r) => r.implementation === i));
  const cell = (r: NriBenchRow | undefined) => {
    if (r === undefined) return "-";
    const spread = Math.max(...r.runs.map((v) => Math.abs(v - r.value))) / (r.value || 1);
    return `${r.value.toLocaleString("en-US")}${r.runs.length > 1 ? ` ±${Math.round(spread * 100)}%` : ""}`;
  };
  const ratio = es && go && go.value > 0 ? `${(es.value / go.value).toFixed(2)}×` : "";
  return [
    `| benchmark | unit | ${NRI_IMPLS.join(" | ")} | es/go |`,
    "|---|---|---:|---:|---:|",
    `| ${NRI_BENCHMARK} | calls/s ↑ | ${cell(es)} | ${cell(go)} | ${ratio} |`,
    "",
    "NRI CreateContainer round trips, one at a time, from a Go runtime on containerd/nri 0.6.1 pkg/adaptation to the plugin; same adjustment from both plugins.",
  ].join("\n");
}

/** The NRI row for bench/main.ts. */
export const nriGroup: GroupRunner = {
  async run({ reps, seconds, warmup, log }) {
    const rows = await runNriBench({ reps, seconds, warmup, log });
    return { rows, table: formatNriBench(rows) };
  },
};

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const { values } = parseArgs({
    options: { reps: { type: "string" }, seconds: { type: "string" }, warmup: { type: "string" } },
  });
  const rows = await runNriBench({
    reps: Number(values.reps ?? 3),
    seconds: Number(values.seconds ?? 5),
    warmup: Number(values.warmup ?? 1),
    log: (s) => console.error(s),
  });
  console.log(formatNriBench(rows));
}
