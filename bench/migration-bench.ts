// Memory-transfer benchmark of the simulated live migration (issue 6): a
// 1 GiB pre-copy migration between two in-process reference shims, next to
// the raw throughput of the same socket type measured in the same run, and
// the blackout time. Not a timed test.
//
//   node dist-bench/bench/migration-bench.js [--memory 1GiB] [--transport unix|tcp] [--dirty-rate N] [--checksum] [--json]
//
// From the bench harness: `import { runMigrationBench } from "./migration-bench.js"`.
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { MemoryTransport, createMigrationServer, migrate } from "../src/migration/index.js";
import { createSimulatedBackend } from "../src/migration/simulated/index.js";

export interface MigrationBenchOptions {
  /** Guest memory. Default 1 GiB. */
  readonly memoryBytes?: number;
  /** Memory-transfer socket. Default "unix". */
  readonly transport?: "unix" | "tcp";
  /** Guest page writes per second. Default 2000. */
  readonly dirtyPagesPerSecond?: number;
  /** Per-page checksums. Default false. */
  readonly checksum?: boolean;
}

export interface MigrationBenchResult {
  readonly memoryBytes: number;
  readonly transport: "unix" | "tcp";
  readonly checksum: boolean;
  /** node:net, same socket type, 256 KiB writes, same process: MB/s (10^6 bytes). */
  readonly rawMBps: number;
  /** The first brownout pass (the whole image): MB/s. */
  readonly firstPassMBps: number;
  /** All page bytes over the whole transfer (connection to verified end): MB/s. */
  readonly transferMBps: number;
  readonly pageBytes: number;
  readonly brownoutPasses: number;
  readonly blackoutMs: number;
  readonly blackoutPages: number;
  readonly migrationMs: number;
  readonly verified: boolean;
}

async function rawThroughput(transport: "unix" | "tcp", dir: string, bytes: number): Promise<number> {
  const server = createServer();
  const target = transport === "unix" ? { path: join(dir, "raw.sock") } : { host: "127.0.0.1", port: 0 };
  await new Promise<void>((resolve) => server.listen(target, resolve));
  const address =
    transport === "unix" ? target : { host: "127.0.0.1", port: (server.address() as { port: number }).port };
  const received = new Promise<number>((resolve) => {
    server.once("connection", (s) => {
      let n = 0;
      const t0 = performance.now();
      s.on("data", (c: Buffer) => {
        n += c.length;
        if (n >= bytes) resolve(performance.now() - t0);
      });
    });
  });
  const socket = new Socket();
  await new Promise<void>((resolve) => socket.connect(address as never, resolve));
  const chunk = Buffer.alloc(256 * 1024, 0x5a);
  for (let sent = 0; sent < bytes; sent += chunk.length) {
    if (!socket.write(chunk)) await new Promise((r) => socket.once("drain", r));
  }
  const ms = await received;
  socket.destroy();
  server.close();
  return bytes / 1e6 / (ms / 1000);
}

export async function runMigrationBench(options: MigrationBenchOptions = {}): Promise<MigrationBenchResult> {
  const memoryBytes = options.memoryBytes ?? 1024 ** 3;
  const transport = options.transport ?? "unix";
  const checksum = options.checksum ?? false;
  const dir = mkdtempSync(join(tmpdir(), "ttrpc-es-migbench-"));
  try {
    const rawMBps = await rawThroughput(transport, dir, memoryBytes);
    const source = createSimulatedBackend({
      sandbox: { sandboxId: "bench", memoryBytes, dirtyPagesPerSecond: options.dirtyPagesPerSecond ?? 2000 },
    });
    const destination = createSimulatedBackend();
    let firstPassMs = 0;
    source.observe((e) => {
      if (e.type === "pass-end" && e.pass === 1) firstPassMs = e.ms;
    });
    const shims = [createMigrationServer({ backend: source }), createMigrationServer({ backend: destination })];
    const [a, b] = await Promise.all(shims.map((s, i) => s.server.listen(`unix:${join(dir, `shim${i}.sock`)}`)));
    let transferAddress = join(dir, "memory.sock");
    if (transport === "tcp") {
      const probe = createServer();
      await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
      transferAddress = `127.0.0.1:${(probe.address() as { port: number }).port}`;
      await new Promise((r) => probe.close(r));
    }
    const result = await migrate({
      source: a!,
      destination: b!,
      transport,
      transferAddress,
      initOptions: { memoryTransport: MemoryTransport.TCP, checksumVerification: checksum },
    });
    for (const s of shims) await s.server.close();
    destination.vm?.stop();
    const stats = source.lastStats;
    if (!result.ok || stats === undefined) throw new Error(`the benchmark migration failed: ${result.error}`);
    return {
      memoryBytes,
      transport,
      checksum,
      rawMBps,
      firstPassMBps: memoryBytes / 1e6 / (firstPassMs / 1000),
      transferMBps: stats.pageBytes / 1e6 / (stats.durationMs / 1000),
      pageBytes: stats.pageBytes,
      brownoutPasses: stats.brownoutPasses,
      blackoutMs: stats.blackoutMs,
      blackoutPages: stats.blackoutPages,
      migrationMs: result.durationMs,
      verified: stats.digest !== "" && stats.digest === destination.lastStats?.digest,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The result as text lines. */
export function formatMigrationBench(r: MigrationBenchResult): string {
  const gib = (r.memoryBytes / 1024 ** 3).toFixed(2);
  return [
    `migration bench: ${gib} GiB guest over ${r.transport} sockets, checksums ${r.checksum ? "on" : "off"}`,
    `  raw ${r.transport} socket (node:net, same run)   ${r.rawMBps.toFixed(0)} MB/s`,
    `  migration, first pass (whole image)    ${r.firstPassMBps.toFixed(0)} MB/s  (${((r.firstPassMBps / r.rawMBps) * 100).toFixed(0)} % of raw)`,
    `  migration, whole transfer              ${r.transferMBps.toFixed(0)} MB/s  (${(r.pageBytes / 1024 ** 3).toFixed(2)} GiB of pages, ${r.brownoutPasses} brownout passes)`,
    `  blackout                               ${r.blackoutMs.toFixed(1)} ms (${r.blackoutPages} pages)`,
    `  migration wall time                    ${(r.migrationMs / 1000).toFixed(2)} s, image digests ${r.verified ? "equal" : "DIFFER"}`,
  ].join("\n");
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: {
      memory: { type: "string" },
      transport: { type: "string" },
      "dirty-rate": { type: "string" },
      checksum: { type: "boolean" },
      json: { type: "boolean" },
    },
  });
  const units: Record<string, number> = { k: 1024, m: 1024 ** 2, g: 1024 ** 3 };
  const m = /^([0-9.]+)\s*([kmg]?)i?b?$/i.exec(values.memory ?? "1g");
  const memoryBytes = m === null ? 1024 ** 3 : Math.round(Number(m[1]) * (units[m[2]!.toLowerCase()] ?? 1));
  const r = await runMigrationBench({
    memoryBytes,
    transport: values.transport === "tcp" ? "tcp" : "unix",
    checksum: values.checksum === true,
    ...(values["dirty-rate"] === undefined ? {} : { dirtyPagesPerSecond: Number(values["dirty-rate"]) }),
  });
  process.stdout.write(values.json ? `${JSON.stringify(r)}\n` : `${formatMigrationBench(r)}\n`);
}
