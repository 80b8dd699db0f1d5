// The QEMU backend's overhead: the same live migration of a real QEMU guest
// (a) through the Migration service (two reference shims with QEMU backends,
// the orchestrator's migrate()) and (b) driven over QMP directly, with no
// ttrpc in between, in one run, alternating. Both use the same capabilities
// and parameters (events, max-bandwidth 4 GiB/s) over a unix socket, and
// read QEMU's own figures from query-migrate. Each migration boots fresh
// guests: the one test/interop/qemu/setup.sh builds. Not a timed test.
//
//   node dist-bench/bench/migration-bench.js --backend qemu [--memory 256,1024] [--reps N] [--json]
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { MemoryTransport, createMigrationServer, migrate } from "../src/migration/index.js";
import {
  createQemuBackend,
  QemuProcess,
  type QemuMigrationStats,
  type QemuVmSpec,
} from "../src/migration/qemu/index.js";

export interface QemuBenchRow {
  readonly memoryMiB: number;
  readonly workingSetMiB: number;
  readonly mode: "service" | "qmp-direct";
  /** QEMU's total-time, ms. */
  readonly totalMs: number;
  /** QEMU's downtime (the blackout), ms. */
  readonly downtimeMs: number;
  /** From the first call (PrepareAndExportSandbox, or the first QMP command) to the destination running, ms. */
  readonly wallMs: number;
  readonly transferredBytes: number;
  /** QEMU's ram.mbps / 8: MB/s (10^6 bytes). */
  readonly MBps: number;
  readonly passes: number;
}

const MAX_BANDWIDTH = 4 * 1024 ** 3;

function spec(memoryMiB: number, workingSetMiB: number): QemuVmSpec {
  const guest = fileURLToPath(new URL("../../test/interop/qemu/.build/guest/", import.meta.url));
  const accel = readFileSync(join(guest, "accel"), "utf8").trim() === "kvm" ? "kvm" : "tcg";
  return {
    machine: "pc-q35-7.2",
    memoryMiB,
    cpus: 1,
    kernel: join(guest, "vmlinuz"),
    initrd: join(guest, "initrd"),
    append: `console=ttyS0 panic=-1 quiet ws=${workingSetMiB} chunk=8`,
    accel,
  };
}

const warm = (vm: QemuProcess) => vm.serial.waitFor((l) => /verify=ok/.test(l));

async function viaService(s: QemuVmSpec, dir: string): Promise<Omit<QemuBenchRow, "memoryMiB" | "workingSetMiB">> {
  let stats: QemuMigrationStats | undefined;
  const source = createQemuBackend({
    vm: s,
    dir,
    maxBandwidth: MAX_BANDWIDTH,
    observe: (e) => {
      if (e.type === "done") stats = e.stats;
    },
  });
  const destination = createQemuBackend({ dir, maxBandwidth: MAX_BANDWIDTH });
  const a = createMigrationServer({ backend: source });
  const b = createMigrationServer({ backend: destination });
  try {
    const [sa, sb] = await Promise.all([
      a.server.listen(`unix:${dir}/src.sock`),
      b.server.listen(`unix:${dir}/dst.sock`),
    ]);
    await warm(await source.start());
    const t0 = performance.now();
    const result = await migrate({
      source: sa,
      destination: sb,
      transport: "unix",
      transferAddress: join(dir, "memory.sock"),
      initOptions: { memoryTransport: MemoryTransport.TCP },
    });
    const wallMs = performance.now() - t0;
    if (!result.ok || stats === undefined) throw new Error(`migration failed: ${result.error}`);
    return row("service", stats, wallMs);
  } finally {
    await a.service.close();
    await b.service.close();
    await a.server.close();
    await b.server.close();
    await source.close();
    await destination.close();
  }
}

async function direct(s: QemuVmSpec, dir: string): Promise<Omit<QemuBenchRow, "memoryMiB" | "workingSetMiB">> {
  const src = await QemuProcess.start({ spec: s, dir, name: "direct-src" });
  let dst: QemuProcess | undefined;
  try {
    await warm(src);
    const t0 = performance.now();
    dst = await QemuProcess.start({ spec: s, dir, name: "direct-dst", incoming: true });
    const caps = { capabilities: [{ capability: "events", state: true }] };
    await src.qmp.execute("migrate-set-capabilities", caps);
    await dst.qmp.execute("migrate-set-capabilities", caps);
    await src.qmp.execute("migrate-set-parameters", { "max-bandwidth": MAX_BANDWIDTH });
    const resumed = dst.qmp.nextEvent((e) => e.event === "RESUME");
    const completed = src.qmp.nextEvent((e) => e.event === "MIGRATION" && e.data.status === "completed");
    const uri = `unix:${join(dir, "direct.sock")}`;
    await dst.qmp.execute("migrate-incoming", { uri });
    await src.qmp.execute("migrate", { uri });
    await Promise.all([resumed, completed]);
    const wallMs = performance.now() - t0;
    // `completed` shows before total-time and downtime are filled in.
    let q: Record<string, unknown> & { ram?: Record<string, number> } = {};
    while (!((q["total-time"] as number) > 0)) q = await src.qmp.execute("query-migrate");
    return row(
      "qmp-direct",
      {
        status: "completed",
        totalMs: q["total-time"] as number,
        downtimeMs: (q.downtime as number) ?? 0,
        transferredBytes: q.ram?.transferred ?? 0,
        mbps: q.ram?.mbps ?? 0,
        passes: q.ram?.["dirty-sync-count"] ?? 0,
        forcedSwitchover: false,
      },
      wallMs,
    );
  } finally {
    await src[Symbol.asyncDispose]();
    await dst?.[Symbol.asyncDispose]();
  }
}

function row(mode: QemuBenchRow["mode"], s: QemuMigrationStats, wallMs: number) {
  return {
    mode,
    totalMs: s.totalMs,
    downtimeMs: s.downtimeMs,
    wallMs: Math.round(wallMs),
    transferredBytes: s.transferredBytes,
    MBps: Math.round(s.mbps / 8),
    passes: s.passes,
  };
}

const HEADER = "| RAM / working set | path | total ms | downtime ms | wall ms | MB sent | MB/s | passes |";

function format(r: QemuBenchRow): string {
  return `| ${r.memoryMiB} / ${r.workingSetMiB} MiB | ${r.mode} | ${r.totalMs} | ${r.downtimeMs} | ${r.wallMs} | ${(r.transferredBytes / 1e6).toFixed(0)} | ${r.MBps} | ${r.passes} |`;
}

/** `migration-bench --backend qemu`: runs and prints the rows. */
export async function qemuBenchMain(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { memory: { type: "string" }, reps: { type: "string" }, json: { type: "boolean" } },
  });
  const sizes = (values.memory ?? "256,1024").split(",").map(Number);
  const reps = Number(values.reps ?? "1");
  const rows: QemuBenchRow[] = [];
  if (!values.json) process.stdout.write(`${HEADER}\n${HEADER.replace(/[^|]+/g, "---")}\n`);
  for (const memoryMiB of sizes) {
    // 256 MiB: 64 MiB kept dirty; 1 GiB: 256 MiB (filling more first takes minutes under TCG).
    const workingSetMiB = memoryMiB >= 1024 ? 256 : Math.max(16, memoryMiB / 4);
    for (let rep = 0; rep < reps; rep++) {
      // Alternate which path goes first, so drift on the shared host hits both.
      const order = rep % 2 === 0 ? [viaService, direct] : [direct, viaService];
      for (const run of order) {
        const dir = mkdtempSync(join(tmpdir(), "ttrpc-es-qemu-bench-"));
        try {
          const r = { memoryMiB, workingSetMiB, ...(await run(spec(memoryMiB, workingSetMiB), dir)) };
          rows.push(r);
          if (!values.json) process.stdout.write(`${format(r)}\n`);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      }
    }
  }
  if (values.json) process.stdout.write(`${JSON.stringify(rows)}\n`);
}
