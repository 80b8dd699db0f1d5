// cli-cold-call: what one `ttrpc-es call` costs as a whole process, the way
// scripts and health checks run it, beside Node's own start and the Go peer's
// client making the same unary call. One ttrpc-es server (in this process,
// idle between calls) serves Interop/Echo and containerd.task.v2.Task/Connect:
//   node -e 0                 Node's floor
//   call --protoset           Interop/Echo from a FileDescriptorSet
//   call, built-in protos     Task/Connect (Interop is not built in; Connect is the health check)
//   call --proto, cached      Interop/Echo from interop.proto, its compile cached by an earlier call
//   Go client                 test/interop/go's peer, scenario unary-no-metadata (one Echo)
// Wall time from spawn to exit and peak RSS (GNU time's %M, when installed),
// runs interleaved in a rotating order, medians.
//
//   node dist-bench/bench/cli-bench.js [--runs N]
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { Task } from "../gen/containerd/task/v2/shim_pb.js";
import { Interop } from "../gen/ttrpces/interop/v1/interop_pb.js";
import { findBuf } from "../src/cli/proto-loader.js";
import { createServer } from "../src/index.js";
import { ensureGoPeer, goPeer } from "./procs.js";
import type { GroupRunner } from "./row-group.js";

const repo = resolve(
  fileURLToPath(new URL(".", import.meta.url)),
  /\/dist(-bench)?\//.test(import.meta.url) ? "../.." : "..",
);
const cliMain = join(repo, "dist/src/cli/main.js");
const GNU_TIME = "/usr/bin/time";
const INTEROP_PROTO = "ttrpces/interop/v1/interop.proto";

export const CLI_BENCHMARK = "cli-cold-call";

interface Subject {
  name: string;
  /** The ratio to `node -e 0` the issue asks for, when there is one. */
  target?: number;
  command: string[];
  env?: Record<string, string>;
  /** What a correct answer contains on stdout. */
  expect: string;
}

export interface CliBenchRow {
  benchmark: string;
  implementation: string;
  /** Median wall time, spawn to exit. */
  value: number;
  unit: "ms";
  runs: number[];
  /** Median peak RSS in bytes; undefined without GNU time. */
  peakRss: number | undefined;
  target: number | undefined;
}

function subjects(address: string, dir: string): Subject[] {
  const echo = ["ttrpces.interop.v1.Interop/Echo", "-d", '{"text":"plain"}'];
  const node = process.execPath;
  return [
    { name: "node -e 0", command: [node, "-e", "0"], expect: "" },
    {
      name: "call --protoset",
      target: 1.5,
      command: [node, cliMain, "call", address, ...echo, "--protoset", join(dir, "interop.binpb")],
      expect: '"text": "plain"',
    },
    {
      name: "call, built-in protos",
      target: 1.5,
      command: [node, cliMain, "call", address, "containerd.task.v2.Task/Connect", "-d", '{"id":"bench"}'],
      expect: '"shimPid": 7',
    },
    {
      name: "call --proto, cached",
      target: 2,
      command: [node, cliMain, "call", address, ...echo, "-I", join(repo, "test/proto"), "--proto", INTEROP_PROTO],
      env: { TTRPC_ES_CACHE_DIR: join(dir, "cache") },
      expect: '"text": "plain"',
    },
    {
      name: "Go client",
      command: [goPeer, "client", "--socket", address.replace(/^unix:\/*/, "/"), "--scenario", "unary-no-metadata"],
      expect: '"text":"plain"',
    },
  ];
}

/** Runs one subject to its end: wall ms and peak RSS; throws when it fails or answers wrong. */
function runOnce(s: Subject, rssFile: string | undefined): Promise<{ ms: number; rss: number | undefined }> {
  const [cmd, ...args] = rssFile === undefined ? s.command : [GNU_TIME, "-f", "%M", "-o", rssFile, ...s.command];
  return new Promise((resolvePromise, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(cmd!, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...s.env } });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (err += c));
    // A hung call must not hang the bench: it is killed, then reaped below.
    const limit = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.once("error", reject);
    child.once("close", (code, signal) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      clearTimeout(limit);
      if (code !== 0 || !out.includes(s.expect)) {
        reject(new Error(`${s.name} exited ${code ?? signal}: ${err.trim() || out.trim()}`));
        return;
      }
      const rss = rssFile === undefined ? undefined : Number(readFileSync(rssFile, "utf8").trim()) * 1024;
      resolvePromise({ ms, rss });
    });
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Builds the protoset the --protoset subject reads. */
function buildProtoset(out: string): void {
  const buf = findBuf();
  if (buf === undefined) throw new Error("the buf binary of @bufbuild/buf is not installed");
  const proto = join(repo, "test/proto");
  execFileSync(buf.command, [...buf.args, "build", proto, "--path", join(proto, INTEROP_PROTO), "-o", out], {
    stdio: ["ignore", "ignore", "inherit"],
  });
}

/** The server every subject calls. */
async function startServer(dir: string): Promise<{ address: string; close: () => Promise<void> }> {
  const server = createServer()
    .register(Interop, { echo: (req) => ({ text: req.text, payload: req.payload }) })
    .register(Task, { connect: () => ({ shimPid: 7, taskPid: 8, version: "2" }) });
  const address = await server.listen(`unix:${join(dir, "cli.sock")}`);
  return { address, close: () => server.close() };
}

/** Builds the CLI, the protoset and the Go peer, then `runs` interleaved runs of each subject. */
export async function runCliBench(options: { runs?: number; log?: (s: string) => void } = {}): Promise<CliBenchRow[]> {
  const { runs = 11, log = () => {} } = options;
  execFileSync("npm", ["run", "-s", "build:changed"], { cwd: repo, stdio: ["ignore", "ignore", "inherit"] });
  await ensureGoPeer();
  const dir = mkdtempSync(join(tmpdir(), "cli-bench-"));
  const server = await startServer(dir);
  try {
    buildProtoset(join(dir, "interop.binpb"));
    const list = subjects(server.address, dir);
    const rssFile = existsSync(GNU_TIME) ? join(dir, "rss") : undefined;
    if (rssFile === undefined) log(`  ${CLI_BENCHMARK}: no ${GNU_TIME} (Debian package time): peak RSS not measured`);
    // One untimed run of each: fills the --proto cache (and Node's compile cache, where Node has one).
    for (const s of list) await runOnce(s, rssFile);
    const wall = new Map<string, number[]>(list.map((s) => [s.name, []]));
    const rss = new Map<string, number[]>(list.map((s) => [s.name, []]));
    for (let r = 0; r < runs; r++) {
      for (const i of list.keys()) {
        const s = list[(i + r) % list.length]!;
        const m = await runOnce(s, rssFile);
        wall.get(s.name)!.push(m.ms);
        if (m.rss !== undefined) rss.get(s.name)!.push(m.rss);
      }
    }
    for (const s of list) log(`  ${CLI_BENCHMARK} / ${s.name}: ${median(wall.get(s.name)!).toFixed(1)} ms`);
    return list.map((s) => ({
      benchmark: CLI_BENCHMARK,
      implementation: s.name,
      value: Math.round(median(wall.get(s.name)!) * 10) / 10,
      unit: "ms",
      runs: wall.get(s.name)!.map((v) => Math.round(v * 10) / 10),
      peakRss: rss.get(s.name)!.length === 0 ? undefined : median(rss.get(s.name)!),
      target: s.target,
    }));
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The rows as a table: wall time and peak RSS, each with its ratio to `node -e 0`, and the targets. */
export function formatCliBench(rows: CliBenchRow[]): string {
  const base = rows[0]!;
  const mib = (b: number | undefined) => (b === undefined ? "-" : (b / 2 ** 20).toFixed(1));
  const ratio = (a: number | undefined, b: number | undefined) =>
    a === undefined || b === undefined || b === 0 ? "" : `${(a / b).toFixed(2)}×`;
  const lines = rows.map((r) => {
    const x = r.value / base.value;
    const verdict = r.target === undefined ? "" : `≤ ${r.target}× ${x <= r.target ? "met" : "missed"}`;
    return `| ${r.implementation} | ${r.value.toFixed(1)} | ${ratio(r.value, base.value)} | ${mib(r.peakRss)} | ${ratio(r.peakRss, base.peakRss)} | ${verdict} |`;
  });
  return [
    `| ${CLI_BENCHMARK} | wall ms ↓ | ×node | peak RSS MiB ↓ | ×node | target |`,
    "|---|---:|---:|---:|---:|---|",
    ...lines,
    "",
    `Whole processes, median of ${base.runs.length} interleaved runs, Node ${process.version}; one ttrpc-es server for all; the built-in row calls containerd.task.v2.Task/Connect, the others Interop/Echo.`,
  ].join("\n");
}

/** The CLI row group for bench/main.ts: 11 runs of each, 3 under --quick. */
export const cliGroup: GroupRunner = {
  async run({ quick, log }) {
    const rows = await runCliBench({ runs: quick ? 3 : 11, log });
    return { rows, table: formatCliBench(rows) };
  },
};

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const { values } = parseArgs({ options: { runs: { type: "string" } } });
  const rows = await runCliBench({ runs: Number(values.runs ?? 11), log: (s) => console.error(s) });
  console.log(formatCliBench(rows));
}
