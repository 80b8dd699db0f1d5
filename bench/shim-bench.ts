// Shim costs: the reference shim (containerd-shim-ttrpces-v2, on ttrpc-es/shim)
// beside Go's containerd-shim-runc-v2 under trixie's containerd 1.7.24 from
// test/interop/shim/setup.sh, as root, repetitions interleaved:
//   shim-ctr-run-rm        wall time of `ctr run --rm` of a busybox `true`,
//   shim-rss               the shim server's RSS with one running container (PSS in `extra`),
//   shim-start-to-address  exec of `<shim> start` until it exits with the address printed.
//
//   node dist-bench/bench/shim-bench.js [--reps N] [--node-flags="..."]
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { buildBusyboxImage } from "../test/interop/nri/oci-image.js";
import { pidsWhere } from "../test/shim/processes.js";
import type { GroupRunner } from "./row-group.js";

const repo = resolve(
  fileURLToPath(new URL(".", import.meta.url)),
  /\/dist(-bench)?\//.test(import.meta.url) ? "../.." : "..",
);
const shimDir = join(repo, "test/interop/shim");
const bin = join(shimDir, ".build/containerd-1.7/usr/bin");
const IMAGE = "localhost/ttrpc-es-shim-busybox:1";
const NAMESPACE = "bench";
/**
 * The launcher's node flags (the server inherits them: `start` spawns it with
 * its own execArgv). A 1 MiB young generation lowers the server's RSS by
 * ~2.5 MB; --no-opt by ~4.5 MB more (the pages of V8's optimising compiler
 * are never touched; a shim answers a few calls per container, and they
 * still run as baseline code). --lite-mode/--jitless make Node print a
 * warning on stderr, which containerd reads as part of start's reply, so
 * they break the shim.
 */
export const LAUNCHER_FLAGS = ["--max-semi-space-size=1", "--no-opt"];

export const SHIM_IMPLS = ["containerd-shim-ttrpces-v2", "containerd-shim-runc-v2"] as const;
export type ShimImpl = (typeof SHIM_IMPLS)[number];
const ROWS = [
  { benchmark: "shim-ctr-run-rm", unit: "ms" },
  { benchmark: "shim-rss", unit: "bytes" },
  { benchmark: "shim-start-to-address", unit: "ms" },
] as const;
type Benchmark = (typeof ROWS)[number]["benchmark"];
export const SHIM_BENCHMARKS = ROWS.map((r) => r.benchmark);

export interface ShimBenchRow {
  benchmark: Benchmark;
  implementation: ShimImpl;
  /** Median over the repetitions. */
  value: number;
  unit: "ms" | "bytes";
  runs: number[];
  extra?: { pssBytes: number[] };
}

/** What one repetition of one shim measured. */
interface Sample {
  run: number;
  rss: number;
  pss: number;
  start: number;
}

const elapsedMs = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

function run(file: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  return new Promise((ok, fail) => {
    const child = execFile(file, args, { ...opts, maxBuffer: 16 << 20, timeout: 60_000 }, (err, stdout, stderr) =>
      err ? fail(new Error(`${basename(file)} ${args.join(" ")}: ${err.message}\n${stderr}`)) : ok(stdout),
    );
    child.stdin?.end(); // `start` reads stdin to its end
  });
}

/** Compiles the reference shim into `out` and writes its launcher, as users run it; returns the launcher. */
function buildShim(out: string, nodeFlags: string[]): string {
  const config = join(out, "tsconfig.json");
  const compilerOptions = {
    outDir: out,
    rootDir: repo,
    noCheck: true,
    declaration: false,
    sourceMap: false,
    inlineSources: false,
  };
  const files = [join(repo, "src/shim/reference/main.ts")];
  writeFileSync(config, JSON.stringify({ extends: join(repo, "tsconfig.build.json"), compilerOptions, files }));
  execFileSync(process.execPath, [createRequire(import.meta.url).resolve("typescript/bin/tsc"), "-p", config]);
  const launcher = join(out, "containerd-shim-ttrpces-v2");
  const main = join(out, "src/shim/reference/main.js");
  writeFileSync(launcher, `#!/bin/sh\nexec "${process.execPath}" ${nodeFlags.join(" ")} "${main}" "$@"\n`);
  chmodSync(launcher, 0o755);
  return launcher;
}

/** containerd 1.7 in `dir`, with its own root, state and sockets. */
class Containerd {
  private readonly child: ChildProcess;
  private readonly exited: Promise<void>;
  readonly address: string;
  readonly env: NodeJS.ProcessEnv;

  constructor(readonly dir: string) {
    this.address = join(dir, "c.sock");
    const config = join(dir, "config.toml");
    writeFileSync(
      config,
      `version = 2\nroot = "${dir}/root"\nstate = "${dir}/state"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n` +
        `[grpc]\n  address = "${this.address}"\n[ttrpc]\n  address = "${this.address}.ttrpc"\n`,
    );
    this.env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? ""}` };
    this.child = spawn(join(bin, "containerd"), ["--config", config], {
      stdio: ["ignore", "ignore", "pipe"],
      env: this.env,
    });
    this.exited = new Promise((r) => this.child.once("exit", () => r()));
  }

  booted(): Promise<void> {
    let log = "";
    return new Promise((ok, fail) => {
      this.child.stderr!.setEncoding("utf8").on("data", (c: string) => {
        log = (log + c).slice(-65536);
        if (log.includes("containerd successfully booted")) ok();
      });
      void this.exited.then(() => fail(new Error(`containerd exited before booting:\n${log}`)));
    });
  }

  ctr(args: string[]): Promise<string> {
    return run(join(bin, "ctr"), ["--address", this.address, "-n", NAMESPACE, ...args], { env: this.env });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGTERM");
    await this.exited;
  }
}

/** Shims started for containerd at `address`: their command line names it, and `-id id` if given. */
function shimPids(address: string, id?: string): number[] {
  return pidsWhere((argv) => {
    const at = (flag: string) => argv[argv.indexOf(flag) + 1];
    return at("-address") === address && (id === undefined || at("-id") === id);
  });
}

function memoryOf(pid: number): { rss: number; pss: number } {
  const kb = (text: string, field: string) => Number(new RegExp(`^${field}:\\s+(\\d+)`, "m").exec(text)?.[1]) * 1024;
  return {
    rss: kb(readFileSync(`/proc/${pid}/status`, "utf8"), "VmRSS"),
    pss: kb(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"), "Pss"),
  };
}

/** One repetition of the three measurements for one shim; `n` names its containers. */
async function sample(ctd: Containerd, shim: string, n: string): Promise<Sample> {
  let t0 = process.hrtime.bigint();
  await ctd.ctr(["run", "--rm", "--runtime", shim, IMAGE, `rm${n}`, "/bin/busybox", "true"]);
  const ctrRun = elapsedMs(t0);
  await ctd.ctr(["run", "-d", "--runtime", shim, IMAGE, `long${n}`, "/bin/busybox", "sleep", "600"]);
  const [pid] = shimPids(ctd.address, `long${n}`);
  if (pid === undefined) throw new Error(`no shim server for long${n}`);
  const mem = memoryOf(pid);
  await ctd.ctr(["task", "kill", "-s", "SIGKILL", `long${n}`]);
  await ctd.ctr(["task", "wait", `long${n}`]).catch(() => "");
  await ctd.ctr(["task", "delete", `long${n}`]);
  await ctd.ctr(["containers", "rm", `long${n}`]);
  t0 = process.hrtime.bigint();
  const address = await startAlone(ctd, shim, n);
  const start = elapsedMs(t0);
  for (const p of shimPids(ctd.address, `s${n}`)) process.kill(p, "SIGTERM");
  // Go's shim leaves its socket behind on SIGTERM.
  rmSync(address.replace(/^unix:\/\//, ""), { force: true });
  return { run: ctrRun, rss: mem.rss, pss: mem.pss, start };
}

/** `<shim> start` as containerd runs it, in a bundle of its own; resolves with the address it printed. */
async function startAlone(ctd: Containerd, shim: string, n: string): Promise<string> {
  const bundle = join(ctd.dir, `bundle-${n}`);
  mkdirSync(bundle);
  writeFileSync(join(bundle, "config.json"), "{}");
  const env = { ...ctd.env, MAX_SHIM_VERSION: "2", TTRPC_ADDRESS: `${ctd.address}.ttrpc` };
  const out = await run(shim, ["-namespace", "startbench", "-id", `s${n}`, "-address", ctd.address, "start"], {
    cwd: bundle,
    env,
  });
  const address = /unix:\/\/[^"\s]+/.exec(out)?.[0];
  if (address === undefined) throw new Error(`${basename(shim)} start printed no address: ${out}`);
  return address;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function rowsOf(samples: Map<ShimImpl, Sample[]>): ShimBenchRow[] {
  return SHIM_IMPLS.flatMap((impl) => {
    const s = samples.get(impl)!;
    const row = (benchmark: Benchmark, unit: "ms" | "bytes", runs: number[], extra?: ShimBenchRow["extra"]) => ({
      benchmark,
      implementation: impl,
      value: Math.round(median(runs)),
      unit,
      runs: runs.map(Math.round),
      ...(extra && { extra }),
    });
    return [
      row(
        "shim-ctr-run-rm",
        "ms",
        s.map((x) => x.run),
      ),
      row(
        "shim-rss",
        "bytes",
        s.map((x) => x.rss),
        { pssBytes: s.map((x) => x.pss) },
      ),
      row(
        "shim-start-to-address",
        "ms",
        s.map((x) => x.start),
      ),
    ];
  });
}

/** Runs setup.sh (idempotent), then `reps` interleaved repetitions (after one warm-up run each). */
export async function runShimBench(
  options: { reps?: number; nodeFlags?: string[]; log?: (s: string) => void } = {},
): Promise<ShimBenchRow[]> {
  const { reps = 10, nodeFlags = LAUNCHER_FLAGS, log = () => {} } = options;
  if (process.getuid?.() !== 0) throw new Error("the shim rows run containerd and runc, which need root");
  execFileSync("bash", [join(shimDir, "setup.sh")], { stdio: ["ignore", "ignore", "inherit"] });
  const cache = join(repo, "node_modules/.cache");
  mkdirSync(cache, { recursive: true });
  const out = mkdtempSync(join(cache, "ttrpc-es-shim-bench-"));
  const dir = mkdtempSync("/tmp/ttrpc-es-shim-bench-");
  let ctd: Containerd | undefined;
  try {
    const shims: Record<ShimImpl, string> = {
      "containerd-shim-ttrpces-v2": buildShim(out, nodeFlags),
      "containerd-shim-runc-v2": join(bin, "containerd-shim-runc-v2"),
    };
    ctd = new Containerd(dir);
    await ctd.booted();
    mkdirSync(join(dir, "image"));
    await ctd.ctr(["images", "import", buildBusyboxImage(join(dir, "image"), IMAGE, ["/bin/busybox", "sh"])]);
    const samples = new Map<ShimImpl, Sample[]>(SHIM_IMPLS.map((i) => [i, []]));
    for (let rep = -1; rep < reps; rep++) {
      // Rotated each repetition, so neither shim always runs right after the other.
      for (const impl of rep % 2 === 0 ? [...SHIM_IMPLS].reverse() : SHIM_IMPLS) {
        const s = await sample(ctd, shims[impl], `${impl === SHIM_IMPLS[0] ? "es" : "go"}${rep + 1}`);
        if (rep < 0) continue; // the warm-up: page cache, image snapshot
        samples.get(impl)!.push(s);
        log(
          `  shim rep ${rep + 1}/${reps} ${impl}: ctr run --rm ${Math.round(s.run)} ms, RSS ${(s.rss / 2 ** 20).toFixed(1)} MiB, start ${Math.round(s.start)} ms`,
        );
      }
    }
    return rowsOf(samples);
  } finally {
    await ctd?.stop();
    // A run that failed half way may leave shims and rootfs mounts behind.
    for (const p of ctd ? shimPids(ctd.address) : []) process.kill(p, "SIGKILL");
    await run("umount", ["-R", "-l", dir]).catch(() => "");
    rmSync(dir, { recursive: true, force: true });
    rmSync(out, { recursive: true, force: true });
  }
}

/** The rows as a table, with the ratio ttrpc-es ÷ Go. */
export function formatShimBench(rows: ShimBenchRow[]): string {
  const cell = (r: ShimBenchRow | undefined) => {
    if (r === undefined) return "-";
    const spread = Math.max(...r.runs.map((v) => Math.abs(v - r.value))) / (r.value || 1);
    return `${r.value.toLocaleString("en-US")}${r.runs.length > 1 ? ` ±${Math.round(spread * 100)}%` : ""}`;
  };
  const lines = ROWS.map(({ benchmark, unit }) => {
    const [es, go] = SHIM_IMPLS.map((i) => rows.find((r) => r.benchmark === benchmark && r.implementation === i));
    const ratio = es && go && go.value > 0 ? `${(es.value / go.value).toFixed(2)}×` : "";
    return `| ${benchmark} | ${unit} ↓ | ${cell(es)} | ${cell(go)} | ${ratio} |`;
  });
  return [
    `| benchmark | unit | ${SHIM_IMPLS.join(" | ")} | es/go |`,
    "|---|---|---:|---:|---:|",
    ...lines,
    "",
    "Shims under containerd 1.7.24 with runc 1.1.5: `ctr run --rm` of a busybox `true`, the shim server's RSS with one running container, `start` until it exits with the address. Targets: ctr run --rm ≤ 1.3×, RSS ≤ 3× the Go shim's.",
  ].join("\n");
}

/** The shim rows for bench/main.ts; `--quick` runs two repetitions. */
export const shimGroup: GroupRunner = {
  async run({ quick, log }) {
    const rows = await runShimBench({ reps: quick ? 2 : 10, log });
    return { rows, table: formatShimBench(rows) };
  },
};

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const { values } = parseArgs({ options: { reps: { type: "string" }, "node-flags": { type: "string" } } });
  // --node-flags="--a --b" replaces LAUNCHER_FLAGS, to compare.
  const nodeFlags = values["node-flags"]?.split(" ").filter(Boolean) ?? LAUNCHER_FLAGS;
  const rows = await runShimBench({ reps: Number(values.reps ?? 10), nodeFlags, log: (s) => console.error(s) });
  console.log(formatShimBench(rows));
  console.log(JSON.stringify(rows));
}
