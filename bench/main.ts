// `npm run bench [-- --quick] [-- --json] [-- --only REGEX] [-- --reps N] [-- --seconds S] [-- --cpu-prof [DIR]]`
//
// Runs every benchmark of issue 8 (and the load/soak rows of issue 9) for each
// implementation pair, client and server always in separate processes,
// repetitions interleaved across implementations, and prints the median,
// spread and ratios; see bench/README.md.
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir, cpus, loadavg, totalmem } from "node:os";
import { join } from "node:path";
import { parseFlags, numberFlag, type NodeImpl } from "./common.js";
import { ServerProc, ensureGoPeer, runClient, type Barrier, type Side } from "./procs.js";
import { summarizeProfiles } from "./profile.js";
import type { RowGroup } from "./row-group.js";

/** The implementation names of the JSON rows: client → server pairs. */
const IMPLS = ["ttrpc-es", "go-ttrpc", "ttrpc-es-to-go", "go-to-ttrpc-es", "grpc-js", "raw-node"] as const;
type Impl = (typeof IMPLS)[number];
const NODE_PAIRS: ReadonlySet<Impl> = new Set<Impl>(["ttrpc-es", "grpc-js", "raw-node"]);
const PAIRS: Record<Impl, { client: Side; server: Side }> = {
  "ttrpc-es": { client: "ttrpc-es", server: "ttrpc-es" },
  "go-ttrpc": { client: "go", server: "go" },
  "ttrpc-es-to-go": { client: "ttrpc-es", server: "go" },
  "go-to-ttrpc-es": { client: "go", server: "ttrpc-es" },
  "grpc-js": { client: "grpc-js", server: "grpc-js" },
  "raw-node": { client: "raw-node", server: "raw-node" },
};

type Unit = "calls/s" | "MB/s" | "µs" | "bytes" | "ms" | "handles";
/** Whether a larger value is better, per unit. */
const HIGHER_IS_BETTER: Record<Unit, boolean> = {
  "calls/s": true,
  "MB/s": true,
  µs: false,
  bytes: false,
  ms: false,
  handles: false,
};

interface RowDef {
  benchmark: string;
  unit: Unit;
  /** Implementations without this row, and why (shown as n/a). */
  na?: Partial<Record<Impl, string>>;
  /** Only these implementations have the row (others n/a with `onlyWhy`). */
  only?: readonly Impl[];
  onlyWhy?: string;
}

const ROWS: RowDef[] = [
  { benchmark: "unary-16B-c1", unit: "calls/s" },
  { benchmark: "unary-16B-c64", unit: "calls/s" },
  { benchmark: "unary-1MiB", unit: "MB/s" },
  { benchmark: "server-stream-64KiB", unit: "MB/s" },
  { benchmark: "client-stream-64KiB", unit: "MB/s" },
  { benchmark: "bidi-64KiB", unit: "MB/s" },
  { benchmark: "latency-c1-p50", unit: "µs" },
  { benchmark: "latency-c1-p99", unit: "µs" },
  {
    benchmark: "rss-per-connection",
    unit: "bytes",
    only: ["ttrpc-es", "go-ttrpc", "grpc-js", "raw-node"],
    onlyWhy: "server-side figure: the same as the row of the server's own pair",
  },
  {
    benchmark: "rss-per-stream",
    unit: "bytes",
    only: ["ttrpc-es", "go-ttrpc", "grpc-js"],
    onlyWhy: "server-side figure (raw-node keeps no per-stream state)",
  },
  {
    benchmark: "heap-growth-1M-calls",
    unit: "bytes",
    only: ["ttrpc-es", "grpc-js", "raw-node"],
    onlyWhy: "V8 heap of a Node server driven by a Node client",
  },
  ...[
    "soak-10k-streams-open",
    "soak-10k-streams-rss-per-stream",
    "soak-10k-streams-heap-residual",
    "soak-10k-streams-handle-growth",
  ].map(
    (b): RowDef => ({
      benchmark: b,
      unit: b.endsWith("-open") ? "ms" : b.endsWith("handle-growth") ? "handles" : "bytes",
      only: ["ttrpc-es"],
      onlyWhy: "ttrpc-es soak",
    }),
  ),
  ...["soak-1M-calls-heap-growth", "soak-1M-calls-client-heap-growth", "soak-1M-calls-handle-growth"].map(
    (b): RowDef => ({
      benchmark: b,
      unit: b.endsWith("handle-growth") ? "handles" : "bytes",
      only: ["ttrpc-es"],
      onlyWhy: "ttrpc-es soak",
    }),
  ),
  ...["slow-consumer-unary-p50", "slow-consumer-unary-p99"].map(
    (b): RowDef => ({ benchmark: b, unit: "µs", only: ["ttrpc-es"], onlyWhy: "ttrpc-es soak" }),
  ),
];

/** The groups with their own pairs and table, after the main rows (bench/row-group.ts). */
const GROUPS: RowGroup[] = [
  { benchmarks: ["nri-create-container-c1"], load: () => import("./nri-bench.js").then((m) => m.nriGroup) },
  { benchmarks: ["rss-idle-server", "rss-after-flood"], load: () => import("./rss-bench.js").then((m) => m.rssGroup) },
  { benchmarks: ["cli-cold-call"], load: () => import("./cli-bench.js").then((m) => m.cliGroup) },
  {
    benchmarks: ["shim-ctr-run-rm", "shim-rss", "shim-start-to-address"],
    load: () => import("./shim-bench.js").then((m) => m.shimGroup),
  },
];

// --- options -------------------------------------------------------------

const flags = parseFlags(process.argv.slice(2));
const quick = flags.has("quick");
const json = flags.has("json");
const only = flags.has("only") ? new RegExp(flags.get("only")!) : undefined;
const reps = numberFlag(flags, "reps", quick ? 1 : 3);
const seconds = numberFlag(flags, "seconds", quick ? 0.3 : 5);
const warmup = numberFlag(flags, "warmup", quick ? 0.1 : 1);
/** grpc-js needs seconds to reach its plateau (performance anchors): 3 s. */
const grpcWarmup = numberFlag(flags, "grpc-warmup", quick ? 0.3 : 3);
const conns = numberFlag(flags, "connections", quick ? 100 : 1000);
// RSS moves in V8's 256 KiB heap pages: at 1,000 streams (5–6 MB) that
// granularity spread the row by ±8 % from run to run; 10,000 bring it near 1 %.
const streams = numberFlag(flags, "streams", quick ? 100 : 10_000);
const soakStreams = numberFlag(flags, "soak-streams", quick ? 1000 : 10_000);
const calls = numberFlag(flags, "calls", quick ? 10_000 : 1_000_000);
const profileRoot = flags.has("cpu-prof")
  ? flags.get("cpu-prof") === "true"
    ? join(process.cwd(), "bench-profiles")
    : flags.get("cpu-prof")!
  : undefined;
if (flags.has("help")) {
  console.log(
    "usage: npm run bench -- [--quick] [--json] [--only REGEX] [--reps N] [--seconds S] [--warmup S] [--grpc-warmup S]\n" +
      "       [--connections N] [--streams N] [--soak-streams N] [--calls N] [--cpu-prof [DIR]]\n" +
      "--only matches 'benchmark/implementation', e.g. --only 'unary-16B-c64' or --only '/ttrpc-es$'",
  );
  process.exit(0);
}
for (const k of flags.keys()) {
  const known = [
    "quick",
    "json",
    "only",
    "reps",
    "seconds",
    "warmup",
    "grpc-warmup",
    "connections",
    "streams",
    "soak-streams",
    "calls",
    "cpu-prof",
    "help",
  ];
  if (!known.includes(k)) {
    console.error(`unknown option --${k} (see --help)`);
    process.exit(2);
  }
}

/** Progress and the table go to stderr under --json, so stdout holds the JSON alone. */
const out = (s: string) => (json ? process.stderr : process.stdout).write(`${s}\n`);

// --- results -------------------------------------------------------------

interface Cell {
  values: number[];
  extra: Record<string, unknown>;
  error?: string;
}
const cells = new Map<string, Cell>();
const key = (b: string, i: Impl) => `${b}/${i}`;
function record(benchmark: string, impl: Impl, value: number, extra: Record<string, unknown> = {}): void {
  const c = cells.get(key(benchmark, impl)) ?? { values: [], extra: {} };
  c.values.push(value);
  Object.assign(c.extra, extra);
  cells.set(key(benchmark, impl), c);
}
function fail(benchmarks: string[], impl: Impl, e: unknown): void {
  const msg = e instanceof Error ? e.message : String(e);
  for (const b of benchmarks) {
    const c = cells.get(key(b, impl)) ?? { values: [], extra: {} };
    c.error = msg;
    cells.set(key(b, impl), c);
  }
  out(`  FAILED ${benchmarks.join(", ")} / ${impl}: ${msg}`);
}

// --- tasks ---------------------------------------------------------------

/** One run of one pair, producing one or more rows. */
interface Task {
  /** The rows it produces (the --only filter selects a task when any matches). */
  rows: string[];
  impls: readonly Impl[];
  /** Runs once per repetition, or once in all. */
  once?: boolean;
  run(impl: Impl, socket: string, profileDir: string | undefined): Promise<void>;
}

const sec = (s: number) => Math.round(s * 1000);

/** A client's time limit: its run, warm-up, start-up and slack. */
function limit(runSeconds: number): number {
  return sec(runSeconds) + 120_000;
}

async function withServer<T>(
  side: Side,
  socket: string,
  profileDir: string | undefined,
  fn: (s: ServerProc) => Promise<T>,
): Promise<T> {
  const server = await ServerProc.start(side, socket, profileDir && `${profileDir}/server`);
  try {
    return await fn(server);
  } finally {
    await server.stop();
  }
}

function throughputTask(
  benchmark: string,
  scenario: string,
  size: number,
  concurrency: number,
  unit: "calls/s" | "MB/s",
  extraRows: string[] = [],
): Task {
  return {
    rows: [benchmark, ...extraRows],
    impls: IMPLS,
    async run(impl, socket, profileDir) {
      const { client, server } = PAIRS[impl];
      const w = client === "grpc-js" ? grpcWarmup : warmup;
      const opts = { size, concurrency, seconds };
      let cpu0 = 0;
      let serverCpu = 0;
      const r = await withServer(server, socket, profileDir, async (srv) => {
        let res: Record<string, unknown>;
        if (client === "go") {
          // The Go peer has no warm-up: a short run first warms our server as our clients' warm-up does.
          if (w > 0) await runClient("go", socket, `bench-${scenario}`, { ...opts, seconds: w }, limit(w));
          cpu0 = srv.cpuSeconds();
          res = await runClient("go", socket, `bench-${scenario}`, opts, limit(seconds));
        } else {
          const onBarrier = async () => {
            cpu0 = srv.cpuSeconds();
          };
          res = await runClient(
            client,
            socket,
            scenario,
            { ...opts, warmup: w },
            limit(seconds + w),
            onBarrier,
            profileDir && `${profileDir}/client`,
          );
        }
        serverCpu = srv.cpuSeconds() - cpu0;
        return res;
      });
      const ops = Number(r.ops);
      const secs = Number(r.seconds);
      if (!(ops > 0) || !(secs > 0)) throw new Error(`no ops measured: ${JSON.stringify(r)}`);
      const value = unit === "calls/s" ? ops / secs : Number(r.bytes) / secs / 1e6;
      // CPU per op (µs): less sensitive to machine noise than throughput; 10 ms resolution on the server side.
      const extra: Record<string, unknown> = {
        ...(unit === "MB/s" ? { ops_per_s: Math.round(ops / secs) } : {}),
        server_cpu_us_per_op: Number(((serverCpu * 1e6) / ops).toPrecision(3)),
        ...(r.client_cpu_s === undefined
          ? {}
          : { client_cpu_us_per_op: Number(((Number(r.client_cpu_s) * 1e6) / ops).toPrecision(3)) }),
      };
      record(benchmark, impl, value, extra);
      if (extraRows.length > 0) {
        record("latency-c1-p50", impl, Number(r.p50_us));
        record("latency-c1-p99", impl, Number(r.p99_us));
      }
    },
  };
}

/** The client that opens connections/streams to a server: ours, or ttrpc-es against the Go server. */
function nodeClientOf(impl: Impl): NodeImpl {
  const c = PAIRS[impl].client;
  return c === "go" ? "ttrpc-es" : c;
}

const TASKS: Task[] = [
  throughputTask("unary-16B-c1", "unary", 16, 1, "calls/s", ["latency-c1-p50", "latency-c1-p99"]),
  throughputTask("unary-16B-c64", "unary", 16, 64, "calls/s"),
  throughputTask("unary-1MiB", "unary", 1 << 20, 1, "MB/s"),
  throughputTask("server-stream-64KiB", "server-stream", 64 << 10, 1, "MB/s"),
  throughputTask("client-stream-64KiB", "client-stream", 64 << 10, 1, "MB/s"),
  throughputTask("bidi-64KiB", "bidi", 64 << 10, 1, "MB/s"),
  {
    rows: ["rss-per-connection"],
    impls: ["ttrpc-es", "go-ttrpc", "grpc-js", "raw-node"],
    async run(impl, socket) {
      await withServer(PAIRS[impl].server, socket, undefined, async (server) => {
        let base = 0;
        let extra: Record<string, unknown> = {};
        await runClient(nodeClientOf(impl), socket, "conns", { count: conns }, limit(60), async (b) => {
          if (b.barrier === "base") base = await server.rss();
          else {
            const rss = await server.rss();
            extra = { connections: conns, server_rss_delta: rss - base, open_ms: Math.round(Number(b.open_ms)) };
            record("rss-per-connection", impl, (rss - base) / conns, extra);
          }
        });
      });
    },
  },
  {
    rows: ["rss-per-stream"],
    impls: ["ttrpc-es", "go-ttrpc", "grpc-js"],
    async run(impl, socket) {
      await withServer(PAIRS[impl].server, socket, undefined, async (server) => {
        let base = 0;
        await runClient(nodeClientOf(impl), socket, "streams", { count: streams }, limit(60), async (b) => {
          if (b.barrier === "base") base = await server.rss();
          else if (b.barrier === "open") {
            const rss = await server.rss();
            record("rss-per-stream", impl, (rss - base) / streams, {
              streams,
              server_rss_delta: rss - base,
              kind: "bidi, one message echoed",
            });
          }
        });
      });
    },
  },
  {
    rows: ["slow-consumer-unary-p50", "slow-consumer-unary-p99"],
    impls: ["ttrpc-es"],
    async run(impl, socket, profileDir) {
      const r = await withServer("ttrpc-es", socket, undefined, () =>
        runClient(
          "ttrpc-es",
          socket,
          "slow-consumer",
          { seconds, warmup },
          limit(2 * seconds + warmup),
          undefined,
          profileDir && `${profileDir}/client`,
        ),
      );
      const common = {
        stalled_stream: r.stalled_stream,
        what: "unary c1 on a connection with one stalled 64 KiB server stream",
      };
      record("slow-consumer-unary-p50", impl, Number(r.p50_us), {
        ...common,
        without_stall_us: Number(r.base_p50_us),
      });
      record("slow-consumer-unary-p99", impl, Number(r.p99_us), {
        ...common,
        without_stall_us: Number(r.base_p99_us),
      });
    },
  },
  {
    rows: [
      "soak-10k-streams-open",
      "soak-10k-streams-rss-per-stream",
      "soak-10k-streams-heap-residual",
      "soak-10k-streams-handle-growth",
    ],
    impls: ["ttrpc-es"],
    once: true,
    async run(impl, socket) {
      await withServer("ttrpc-es", socket, undefined, async (server) => {
        let baseRss = 0;
        let base = await server.stats();
        await runClient("ttrpc-es", socket, "streams", { count: soakStreams }, limit(120), async (b) => {
          if (b.barrier === "base") {
            baseRss = await server.rss();
            base = await server.stats();
          } else if (b.barrier === "open") {
            const rss = await server.rss();
            record("soak-10k-streams-open", impl, Number(b.open_ms), {
              streams: soakStreams,
              what: "open N bidi streams on one connection, one echo each",
            });
            record("soak-10k-streams-rss-per-stream", impl, (rss - baseRss) / soakStreams, { streams: soakStreams });
          } else {
            const s = await server.stats();
            record("soak-10k-streams-heap-residual", impl, s.heapUsed - base.heapUsed, {
              streams: soakStreams,
              what: "server heap after all streams closed minus before, after GC",
              close_ms: Math.round(Number(b.close_ms)),
            });
            record("soak-10k-streams-handle-growth", impl, s.handles - base.handles, {
              before: base.handleKinds,
              after: s.handleKinds,
            });
          }
        });
      });
    },
  },
  {
    rows: [
      "heap-growth-1M-calls",
      "soak-1M-calls-heap-growth",
      "soak-1M-calls-client-heap-growth",
      "soak-1M-calls-handle-growth",
    ],
    impls: ["ttrpc-es", "grpc-js", "raw-node"],
    once: true,
    async run(impl, socket) {
      // The limit assumes at least 500 calls/s: grpc-js on a busy 2-core machine does about 1,700.
      const samples: {
        calls: number;
        server_heap: number;
        client_heap: number;
        server_handles: number;
        client_handles: number;
      }[] = [];
      let firstKinds: Record<string, number> = {};
      let lastKinds: Record<string, number> = {};
      await withServer(PAIRS[impl].server, socket, undefined, async (server) => {
        await runClient(
          nodeClientOf(impl),
          socket,
          "calls",
          { count: calls, concurrency: 64, samples: 10 },
          limit(calls / 500 + 60),
          async (b: Barrier) => {
            const s = await server.stats();
            if (samples.length === 0) firstKinds = b.client.handleKinds;
            lastKinds = b.client.handleKinds;
            samples.push({
              calls: Number(b.calls),
              server_heap: s.heapUsed,
              client_heap: b.client.heapUsed,
              server_handles: s.handles,
              client_handles: b.client.handles,
            });
          },
        );
      });
      const first = samples[0]!;
      const warm = samples[1]!;
      const last = samples[samples.length - 1]!;
      const heapSamples = samples.map((s) => [s.calls, s.server_heap, s.client_heap]);
      record("heap-growth-1M-calls", impl, last.server_heap - first.server_heap, {
        calls,
        what: "server heapUsed after GC, after the calls minus before",
        client_growth: last.client_heap - first.client_heap,
      });
      if (impl === "ttrpc-es") {
        const note = { calls, what: `after GC, at ${calls} calls minus at ${warm.calls} (past warm-up)` };
        record("soak-1M-calls-heap-growth", impl, last.server_heap - warm.server_heap, {
          ...note,
          samples_calls_server_client: heapSamples,
        });
        record("soak-1M-calls-client-heap-growth", impl, last.client_heap - warm.client_heap, note);
        record(
          "soak-1M-calls-handle-growth",
          impl,
          last.server_handles - first.server_handles + (last.client_handles - first.client_handles),
          {
            server: [first.server_handles, last.server_handles],
            client: [first.client_handles, last.client_handles],
            client_kinds: [firstKinds, lastKinds],
          },
        );
      }
    },
  },
];

// --- running -------------------------------------------------------------

function selected(t: Task, impl: Impl): boolean {
  return only === undefined || t.rows.some((r) => only.test(`${r}/${impl}`));
}

let loadAtStart = 0;

async function main(): Promise<number> {
  const t0 = Date.now();
  const plan = TASKS.map((t) => ({ t, impls: t.impls.filter((i) => selected(t, i)) })).filter(
    (p) => p.impls.length > 0,
  );
  const groups = GROUPS.filter((g) => only === undefined || g.benchmarks.some((b) => only.test(b)));
  if (plan.length === 0 && groups.length === 0) {
    const names = [...ROWS.map((r) => r.benchmark), ...GROUPS.flatMap((g) => g.benchmarks)];
    console.error(`--only ${String(only)} selects nothing; rows: ${names.join(", ")}`);
    return 2;
  }
  const usesGo = plan.some((p) => p.impls.some((i) => PAIRS[i].client === "go" || PAIRS[i].server === "go"));
  if (usesGo) {
    out("building the Go peer (test/interop/go/setup.sh) ...");
    await ensureGoPeer();
  }
  out(
    `${quick ? "quick run: " : ""}${reps} rep(s) × ${seconds} s per row (warm-up ${warmup} s, grpc-js ${grpcWarmup} s); ` +
      `${conns} connections, ${streams} streams, soak ${soakStreams} streams, ${calls} calls; ${cpus().length} CPUs, Node ${process.version}`,
  );
  loadAtStart = loadavg()[0]!;
  if (loadAtStart > cpus().length * 0.5) {
    out(
      `WARNING: load average ${loadAtStart.toFixed(1)} on ${cpus().length} CPUs before the run: other work will skew the figures`,
    );
  }
  const dir = mkdtempSync(join(tmpdir(), "ttrpc-es-bench-"));
  let n = 0;
  try {
    for (let rep = 0; rep < reps; rep++) {
      for (const { t, impls } of plan) {
        if (t.once === true && rep > 0) continue;
        // Rotate the order each repetition so no implementation always runs right after the same other one.
        const order = impls.map((_, i) => impls[(i + rep) % impls.length]!);
        for (const impl of order) {
          const socket = join(dir, `s${n++}.sock`);
          // Every pair with both ends in Node is profiled, so that ttrpc-es can be read against raw-node.
          const profileDir =
            profileRoot !== undefined && NODE_PAIRS.has(impl) ? join(profileRoot, t.rows[0]!, impl) : undefined;
          if (profileDir !== undefined) mkdirSync(profileDir, { recursive: true });
          const started = Date.now();
          try {
            await t.run(impl, socket, profileDir);
            out(
              `  rep ${rep + 1}/${reps} ${t.rows[0]} / ${impl}: ${describe(t.rows[0]!, impl)} (${((Date.now() - started) / 1000).toFixed(1)} s)`,
            );
          } catch (e) {
            fail(t.rows, impl, e);
          }
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const groupRows: object[] = [];
  const groupTables: string[] = [];
  let groupFailed = false;
  for (const g of groups) {
    try {
      const { rows, table } = await (await g.load()).run({ quick, reps, seconds, warmup, log: out });
      groupRows.push(...rows);
      groupTables.push(table);
    } catch (e) {
      groupFailed = true;
      out(`  FAILED ${g.benchmarks.join(", ")}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  const elapsed = (Date.now() - t0) / 1000;
  printTable(elapsed);
  for (const table of groupTables) out(`\n${table}`);
  if (json) process.stdout.write(`${JSON.stringify([...jsonRows(), ...groupRows], null, 2)}\n`);
  if (profileRoot !== undefined) out(`\n${summarizeProfiles(profileRoot, 15)}`);
  const failed = groupFailed || [...cells.values()].some((c) => c.error !== undefined);
  return failed ? 1 : 0;
}

function describe(benchmark: string, impl: Impl): string {
  const c = cells.get(key(benchmark, impl));
  if (c === undefined || c.values.length === 0) return "-";
  const unit = ROWS.find((r) => r.benchmark === benchmark)?.unit ?? "";
  return `${fmt(c.values[c.values.length - 1]!)} ${unit}`;
}

// --- reporting -----------------------------------------------------------

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function fmt(v: number): string {
  const a = Math.abs(v);
  const digits = a >= 100 ? 0 : a >= 10 ? 1 : 2;
  return v.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

function naReason(row: RowDef, impl: Impl): string | undefined {
  if (row.only !== undefined && !row.only.includes(impl)) return row.onlyWhy ?? "n/a";
  return row.na?.[impl];
}

function cellText(row: RowDef, impl: Impl): string {
  if (naReason(row, impl) !== undefined) return "n/a";
  const c = cells.get(key(row.benchmark, impl));
  if (c?.error !== undefined) return "FAIL";
  if (c === undefined || c.values.length === 0) return "-";
  const m = median(c.values);
  if (c.values.length === 1 || m === 0) return fmt(m);
  const spread = Math.max(Math.max(...c.values) - m, m - Math.min(...c.values)) / Math.abs(m);
  return `${fmt(m)} ±${Math.round(spread * 100)}%`;
}

function medianOf(benchmark: string, impl: Impl): number | undefined {
  const c = cells.get(key(benchmark, impl));
  return c === undefined || c.error !== undefined || c.values.length === 0 ? undefined : median(c.values);
}

function ratio(benchmark: string, other: Impl): string {
  const a = medianOf(benchmark, "ttrpc-es");
  const b = medianOf(benchmark, other);
  if (a === undefined || b === undefined || b === 0) return "";
  return `${(a / b).toFixed(2)}×`;
}

function printTable(elapsed: number): void {
  const header = ["benchmark", "unit", ...IMPLS, "es/go", "es/grpc", "es/raw"];
  const lines: string[][] = [header];
  for (const row of ROWS) {
    if (!IMPLS.some((i) => cells.has(key(row.benchmark, i)))) continue;
    const better = HIGHER_IS_BETTER[row.unit] ? "↑" : "↓";
    lines.push([
      row.benchmark,
      `${row.unit} ${better}`,
      ...IMPLS.map((i) => cellText(row, i)),
      ratio(row.benchmark, "go-ttrpc"),
      ratio(row.benchmark, "grpc-js"),
      ratio(row.benchmark, "raw-node"),
    ]);
  }
  const widths = header.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
  out("");
  out(`| ${header.map((h, i) => h.padEnd(widths[i]!)).join(" | ")} |`);
  out(`|${widths.map((w, i) => (i < 2 ? "-".repeat(w + 2) : `${"-".repeat(w + 1)}:`)).join("|")}|`);
  for (const l of lines.slice(1))
    out(`| ${l.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ")} |`);
  out("");
  out(
    `Median of ${reps} interleaved run(s) × ${seconds} s; ±: largest distance of a run from the median. MB/s = 10^6 payload bytes/s, one direction. ` +
      `↑ higher is better, ↓ lower is better; es/x = ttrpc-es ÷ x (value ratio: for ↓ rows below 1 is better). ` +
      `Memory rows are server-side; go-ttrpc memory rows: Go server, connections and streams opened by a ttrpc-es client. ` +
      `n/a: ${[...new Set(ROWS.flatMap((r) => IMPLS.map((i) => naReason(r, i)).filter((x): x is string => x !== undefined)))].join("; ")}.`,
  );
  out(
    `${cpus().length} × ${cpus()[0]?.model ?? "?"}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}; ` +
      `load average ${loadAtStart.toFixed(1)} before, ${loadavg()[0]!.toFixed(1)} after; took ${elapsed.toFixed(0)} s.`,
  );
  const errors = [...cells.entries()].filter(([, c]) => c.error !== undefined);
  if (errors.length > 0) {
    out(`\n${errors.length} benchmark(s) FAILED:`);
    for (const [k, c] of errors) out(`  ${k}: ${c.error!.split("\n")[0]}`);
  }
}

function jsonRows(): object[] {
  const rows: object[] = [];
  for (const row of ROWS) {
    for (const impl of IMPLS) {
      if (naReason(row, impl) !== undefined) continue;
      const c = cells.get(key(row.benchmark, impl));
      if (c === undefined) continue;
      if (c.error !== undefined || c.values.length === 0) {
        rows.push({
          benchmark: row.benchmark,
          implementation: impl,
          value: null,
          unit: row.unit,
          error: c.error ?? "no value",
        });
        continue;
      }
      rows.push({
        benchmark: row.benchmark,
        implementation: impl,
        value: Number(median(c.values).toPrecision(6)),
        unit: row.unit,
        spread: {
          min: Number(Math.min(...c.values).toPrecision(6)),
          max: Number(Math.max(...c.values).toPrecision(6)),
          runs: c.values.length,
        },
        ...c.extra,
      });
    }
  }
  return rows;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
