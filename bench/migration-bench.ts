// Memory-transfer benchmark of the simulated live migration: pre-copy
// migrations between two in-process reference shims, each next to the raw
// node:net throughput of the same socket (and the same link emulation)
// measured just before and just after it, in the same run: from memory to
// memory (guest-sized images on both sides: the reference, a transfer's
// ceiling) and from one cached buffer, with Node's own reads and with
// direct reads into one buffer (the socket's own ceiling). Not a timed test.
//
//   node dist-bench/bench/migration-bench.js [--memory 1GiB,4GiB] [--guest dense,zero-heavy]
//     [--channels 1,2,4] [--compression-workers N] [--link-mbps N]
//     [--transport unix|tcp] [--dirty-rate N] [--checksum] [--json]
//
// --guest: "dense" (every page holds data) and/or "zero-heavy" (75 % of the
// pages never written: zero pages travel as markers).
// --channels: transfer connections, striped (like QEMU's multifd).
// --compression-workers N: every row is run without and with
// compression_settings { throttle_worker_count: N }.
// --link-mbps N: the memory connections go through a relay in this process
// that forwards at most N MB/s (10^6 bytes) in total, source to destination
// (a token bucket: it pauses reading when ahead of the rate, so the sender
// feels the back-pressure of a slower link, as over TCP between hosts).
// The raw figure of such a row goes through the same relay.
//
// From the bench harness: `import { runMigrationBench } from "./migration-bench.js"`.
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, createServer, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { MemoryTransport, createMigrationServer, migrate, sessionNumber } from "../src/migration/index.js";
import { createSimulatedBackend } from "../src/migration/simulated/simulated-backend.js";
import { encodeEndpointDescriptor } from "../src/migration/endpoint-descriptor.js";
import { MemoryImage } from "../src/migration/simulated/memory-image.js";

type NetTarget = { path: string } | { host: string; port: number };

export type BenchGuest = "dense" | "zero-heavy";
const ZERO_HEAVY_FRACTION = 0.75;

export interface MigrationBenchOptions {
  /** Guest memory. Default 1 GiB. */
  readonly memoryBytes?: number;
  /** Default "dense". */
  readonly guest?: BenchGuest;
  /** Memory-transfer socket. Default "unix". */
  readonly transport?: "unix" | "tcp";
  /** Guest page writes per second. Default 2000. */
  readonly dirtyPagesPerSecond?: number;
  /** Per-page checksums. Default false. */
  readonly checksum?: boolean;
  /** Transfer channels. Default 1. */
  readonly channels?: number;
  /** compression_settings.throttle_worker_count; undefined: no compression. */
  readonly compressionWorkers?: number;
  /** Emulated link speed in MB/s; undefined: the socket as it is. */
  readonly linkMBps?: number;
}

export interface MigrationBenchResult {
  readonly memoryBytes: number;
  readonly guest: BenchGuest;
  readonly transport: "unix" | "tcp";
  readonly checksum: boolean;
  readonly channels: number;
  readonly compressionWorkers: number | undefined;
  readonly linkMBps: number | undefined;
  /**
   * The reference: raw node:net over the same socket (and relay), 256 KiB
   * writes of one buffer, same process, measured just before and just after
   * the migration with Node's own reads and with direct reads: the highest
   * of the four, MB/s (10^6 bytes). The machine is shared: noise is large.
   */
  readonly rawMBps: number;
  /** Node's own reads (a fresh 64 KiB buffer each): the higher of before and after. */
  readonly rawNodeMBps: number;
  /** Reads into one reusable 1 MiB buffer (onread): the higher of before and after. */
  readonly rawDirectMBps: number;
  /**
   * The ceiling of moving guest memory: raw node:net from a dense image
   * (up to 1 GiB of it) straight into a destination image, the higher of
   * before and after. The buffers of {@link rawMBps} stay in the caches;
   * a migration's pages cannot.
   */
  readonly rawMemoryMBps: number;
  /** The first brownout pass (the whole image, zero pages included): image MB/s. */
  readonly firstPassMBps: number;
  /**
   * All page bytes over the transfer proper: from the connection to the end
   * of the blackout (every page applied at the destination), MB/s.
   */
  readonly pagesMBps: number;
  /** All page bytes over the whole transfer (connection to verified end, both digests included): MB/s. */
  readonly transferMBps: number;
  /** The verification after the blackout (both sides digest their image and compare), ms. */
  readonly verifyMs: number;
  /** Bytes on the memory connections, framing included. */
  readonly wireBytes: number;
  readonly pageBytes: number;
  readonly zeroPages: number;
  readonly brownoutPasses: number;
  readonly blackoutMs: number;
  readonly blackoutPages: number;
  readonly migrationMs: number;
  readonly verified: boolean;
}

/** A relay that forwards every connection to `target`, at most `mbps` in total (both ways, one bucket). */
async function startRelay(
  listenAt: NetTarget,
  target: NetTarget,
  mbps: number,
): Promise<{ address: NetTarget; close(): void }> {
  const bytesPerMs = (mbps * 1e6) / 1000;
  let start = -1;
  let passed = 0;
  const sockets = new Set<Socket>();
  // Forwards from → to; over the rate it stops reading until the bucket has caught up.
  const pace = (from: Socket, to: Socket) => {
    const resumeLater = () => {
      const owedMs = passed / bytesPerMs - (performance.now() - start);
      if (owedMs <= 1) from.resume();
      else setTimeout(resumeLater, owedMs).unref();
    };
    from.on("data", (chunk: Buffer) => {
      if (start < 0) start = performance.now();
      passed += chunk.length;
      from.pause();
      if (to.write(chunk)) resumeLater();
      else to.once("drain", resumeLater);
    });
  };
  const server = createServer({ pauseOnConnect: true }, (inbound) => {
    const outbound = new Socket();
    sockets.add(inbound).add(outbound);
    const end = () => {
      inbound.destroy();
      outbound.destroy();
    };
    for (const s of [inbound, outbound]) s.on("error", end).on("close", end);
    outbound.connect(target as never, () => {
      // As the shims' own sockets: no Nagle delay on small frames (acks, device state).
      inbound.setNoDelay(true);
      outbound.setNoDelay(true);
      pace(inbound, outbound);
      pace(outbound, inbound);
      inbound.resume();
    });
  });
  await new Promise<void>((resolve) => server.listen(listenAt, resolve));
  const address =
    "path" in listenAt ? listenAt : { host: "127.0.0.1", port: (server.address() as { port: number }).port };
  return {
    address,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

let rawRuns = 0;

/** Guest-sized memory for the raw copy from memory to memory: a dense image and a destination. */
interface RawImages {
  readonly from: MemoryImage;
  readonly into: MemoryImage;
}

/**
 * Raw node:net: the listener writes, the dialer counts what arrives, as in
 * the migration (the source listens, the destination dials).
 * - "node": one cached 256 KiB buffer written over and over, Node's own
 *   reads (a fresh 64 KiB buffer each);
 * - "direct": the same writes, reads into one reusable 1 MiB buffer
 *   (socket onread: the fastest Node receives);
 * - "memory": what a transfer must do at the least, moving guest memory:
 *   1 MiB writes straight from a dense image, reads straight into the
 *   destination image where the bytes belong. Neither side's bytes are in
 *   a cache, so the kernel's two copies run at memory speed, not cache speed.
 */
async function rawThroughput(
  transport: "unix" | "tcp",
  dir: string,
  bytes: number,
  linkMBps: number | undefined,
  mode: "node" | "direct" | "memory",
  images?: RawImages,
): Promise<number> {
  const chunk = Buffer.alloc(256 * 1024, 0x5a);
  const pagesPerWrite = (1024 * 1024) / (images?.from.pageSize ?? 4096);
  const server = createServer(async (s) => {
    s.on("error", () => {});
    for (let sent = 0; sent < bytes && !s.destroyed; ) {
      const buffers = images === undefined ? [chunk] : images.from.views(sent / images.from.pageSize, pagesPerWrite);
      for (const b of buffers) {
        sent += b.length;
        if (!s.write(b)) await new Promise((r) => s.once("drain", r));
      }
    }
  });
  const target: NetTarget =
    transport === "unix" ? { path: join(dir, `raw${++rawRuns}.sock`) } : { host: "127.0.0.1", port: 0 };
  await new Promise<void>((resolve) => server.listen(target, resolve));
  let address: NetTarget =
    transport === "unix" ? target : { host: "127.0.0.1", port: (server.address() as { port: number }).port };
  const relay =
    linkMBps === undefined
      ? undefined
      : await startRelay(
          transport === "unix" ? { path: join(dir, `raw-relay${rawRuns}.sock`) } : { host: "127.0.0.1", port: 0 },
          address,
          linkMBps,
        );
  if (relay !== undefined) address = relay.address;
  let n = 0;
  let t0 = 0;
  let done: (ms: number) => void = () => {};
  const received = new Promise<number>((resolve) => (done = resolve));
  const count = (length: number) => {
    n += length;
    if (n >= bytes) done(performance.now() - t0);
  };
  const one = Buffer.allocUnsafeSlow(1024 * 1024);
  // Each run fills the destination afresh (its pages stay mapped, as a destination VM's are).
  images?.into.zeroPages(0, images.into.pageCount);
  const chunks = images?.into.chunks.map((c) => Buffer.from(c));
  const chunkBytes = chunks?.[0]?.length ?? 0;
  // The destination region the next bytes belong in (the one buffer once all have come).
  const into =
    chunks === undefined
      ? one
      : () => {
          const c = chunks[Math.floor(n / chunkBytes)];
          const at = n % chunkBytes;
          return c === undefined ? one : c.subarray(at, Math.min(at + one.length, c.length));
        };
  const socket = connect({
    ...(address as { path: string }),
    ...(mode === "node"
      ? {}
      : {
          onread: {
            buffer: into,
            callback: (k: number) => {
              count(k);
              return true;
            },
          },
        }),
  });
  if (mode === "node") socket.on("data", (c: Buffer) => count(c.length));
  await new Promise<void>((resolve) => socket.once("connect", resolve));
  t0 = performance.now();
  const ms = await received;
  if (images !== undefined && !images.from.equals(images.into))
    throw new Error("the raw copy from memory to memory did not arrive intact");
  socket.destroy();
  relay?.close();
  server.close();
  return bytes / 1e6 / (ms / 1000);
}

export async function runMigrationBench(options: MigrationBenchOptions = {}): Promise<MigrationBenchResult> {
  const memoryBytes = options.memoryBytes ?? 1024 ** 3;
  const guest = options.guest ?? "dense";
  const transport = options.transport ?? "unix";
  const checksum = options.checksum ?? false;
  const channels = options.channels ?? 1;
  const { compressionWorkers, linkMBps } = options;
  const dir = mkdtempSync(join(tmpdir(), "ttrpc-es-migbench-"));
  try {
    // A slow link moves less in the same time: the raw figure of such a row uses a smaller sample.
    const rawBytes = Math.min(memoryBytes, linkMBps === undefined ? 512 * 1024 ** 2 : 128 * 1024 ** 2);
    // From memory to memory: a GiB at most, always far more than the caches hold.
    const memoryRawBytes = Math.min(memoryBytes, linkMBps === undefined ? 1024 ** 3 : 128 * 1024 ** 2);
    const images: RawImages = {
      from: new MemoryImage({ sizeBytes: memoryRawBytes, fill: "pattern" }),
      into: new MemoryImage({ sizeBytes: memoryRawBytes }),
    };
    const raw = async () => ({
      node: await rawThroughput(transport, dir, rawBytes, linkMBps, "node"),
      direct: await rawThroughput(transport, dir, rawBytes, linkMBps, "direct"),
      memory: await rawThroughput(transport, dir, memoryRawBytes, linkMBps, "memory", images),
    });
    const rawBefore = await raw();
    // The raw figures leave up to a GiB of garbage buffers: collect them now,
    // not in the middle of the migration (a real shim runs no raw test).
    collectGarbage();
    const source = createSimulatedBackend({
      sandbox: {
        sandboxId: "bench",
        memoryBytes,
        dirtyPagesPerSecond: options.dirtyPagesPerSecond ?? 2000,
        ...(guest === "zero-heavy" ? { zeroFraction: ZERO_HEAVY_FRACTION } : {}),
      },
      channels,
    });
    const destination = createSimulatedBackend();
    let firstPassMs = 0;
    source.observe((e) => {
      if (e.type === "pass-end" && e.pass === 1) firstPassMs = e.ms;
    });
    const shims = [createMigrationServer({ backend: source }), createMigrationServer({ backend: destination })];
    const [a, b] = await Promise.all(shims.map((s, i) => s.server.listen(`unix:${join(dir, `shim${i}.sock`)}`)));
    // The source listens here; the destination dials `dialAt` (the relay's address when the link is
    // emulated). A dialed socket lets the destination read pages straight into guest memory.
    let listenAt = join(dir, "memory.sock");
    if (transport === "tcp") listenAt = `127.0.0.1:${await freePort()}`;
    let relay: Awaited<ReturnType<typeof startRelay>> | undefined;
    let dialAt = listenAt;
    if (linkMBps !== undefined) {
      relay = await startRelay(
        transport === "unix" ? { path: join(dir, "relay.sock") } : { host: "127.0.0.1", port: 0 },
        netTarget(listenAt, transport),
        linkMBps,
      );
      dialAt = "path" in relay.address ? relay.address.path : `127.0.0.1:${relay.address.port}`;
    }
    const sessionId = randomUUID();
    const token = new Uint8Array(16).map(() => Math.floor(Math.random() * 255) + 1);
    const descriptor = (role: "listen" | "connect", address: string) =>
      encodeEndpointDescriptor({ transport, address, role, token, sessionNumber: sessionNumber(sessionId) });
    const result = await migrate({
      source: a!,
      destination: b!,
      sessionId,
      protocolInfo: { source: descriptor("listen", listenAt), destination: descriptor("connect", dialAt) },
      initOptions: {
        memoryTransport: MemoryTransport.TCP,
        checksumVerification: checksum,
        ...(compressionWorkers === undefined
          ? {}
          : { compressionSettings: { throttleWorkerCount: compressionWorkers } }),
      },
    });
    relay?.close();
    for (const s of shims) await s.server.close();
    destination.vm?.stop();
    const stats = source.lastStats;
    if (!result.ok || stats === undefined) throw new Error(`the benchmark migration failed: ${result.error}`);
    const rawAfter = await raw();
    return {
      memoryBytes,
      guest,
      transport,
      checksum,
      channels,
      compressionWorkers,
      linkMBps,
      rawMBps: Math.max(rawBefore.node, rawBefore.direct, rawAfter.node, rawAfter.direct),
      rawNodeMBps: Math.max(rawBefore.node, rawAfter.node),
      rawDirectMBps: Math.max(rawBefore.direct, rawAfter.direct),
      rawMemoryMBps: Math.max(rawBefore.memory, rawAfter.memory),
      firstPassMBps: memoryBytes / 1e6 / (firstPassMs / 1000),
      pagesMBps: stats.pageBytes / 1e6 / (stats.transferMs / 1000),
      transferMBps: stats.pageBytes / 1e6 / (stats.durationMs / 1000),
      verifyMs: stats.durationMs - stats.transferMs,
      wireBytes: stats.wireBytes,
      pageBytes: stats.pageBytes,
      zeroPages: stats.zeroPages,
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

// The bench's own hygiene, not the runtime's: a full collection between the
// raw figures and the migration.
const collectGarbage: () => void = (() => {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
})();

function netTarget(address: string, transport: "unix" | "tcp"): NetTarget {
  if (transport === "unix") return { path: address };
  const i = address.lastIndexOf(":");
  return { host: address.slice(0, i), port: Number(address.slice(i + 1)) };
}

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const port = (probe.address() as { port: number }).port;
  await new Promise((r) => probe.close(r));
  return port;
}

const HEADER =
  "| guest | memory | link | channels | compression | raw MB/s: memory (cached: node reads / direct reads) | first pass MB/s (% memory raw / % cached raw) | to the last page MB/s (% memory raw) | to verified MB/s (% memory raw) | wire MiB | zero pages | passes | blackout ms (pages) | digests (ms) |";

/** One result as a markdown table row (see {@link HEADER}). */
export function formatMigrationRow(r: MigrationBenchResult): string {
  const pct = (x: number, of = r.rawMemoryMBps) => `${((x / of) * 100).toFixed(0)} %`;
  return [
    "",
    r.guest,
    `${(r.memoryBytes / 1024 ** 3).toFixed(2)} GiB`,
    `${r.transport}${r.linkMBps === undefined ? "" : ` @ ${r.linkMBps} MB/s`}`,
    r.channels,
    r.compressionWorkers === undefined ? "off" : `${r.compressionWorkers} workers`,
    `${r.rawMemoryMBps.toFixed(0)} (${r.rawNodeMBps.toFixed(0)} / ${r.rawDirectMBps.toFixed(0)})`,
    `${r.firstPassMBps.toFixed(0)} (${pct(r.firstPassMBps)} / ${pct(r.firstPassMBps, r.rawMBps)})`,
    `${r.pagesMBps.toFixed(0)} (${pct(r.pagesMBps)})`,
    `${r.transferMBps.toFixed(0)} (${pct(r.transferMBps)})`,
    (r.wireBytes / 1024 ** 2).toFixed(0),
    r.zeroPages,
    r.brownoutPasses,
    `${r.blackoutMs.toFixed(1)} (${r.blackoutPages})`,
    `${r.verified ? "equal" : "DIFFER"} (${r.verifyMs.toFixed(0)})`,
    "",
  ]
    .join(" | ")
    .trim();
}

/** Results as a markdown table. */
export function formatMigrationBench(results: readonly MigrationBenchResult[]): string {
  const sep = HEADER.replace(/[^|]+/g, "---");
  return [HEADER, sep, ...results.map(formatMigrationRow)].join("\n");
}

function parseSize(s: string): number {
  const units: Record<string, number> = { k: 1024, m: 1024 ** 2, g: 1024 ** 3 };
  const m = /^([0-9.]+)\s*([kmg]?)i?b?$/i.exec(s.trim());
  if (m === null) throw new Error(`not a size: ${s}`);
  return Math.round(Number(m[1]) * (units[m[2]!.toLowerCase()] ?? 1));
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
const backendFlag = process.argv.indexOf("--backend");
if (isMain && backendFlag >= 0 && process.argv[backendFlag + 1] === "qemu") {
  // A real QEMU guest, through the service and over QMP directly (qemu-migration-bench.ts).
  const { qemuBenchMain } = await import("./qemu-migration-bench.js");
  await qemuBenchMain(process.argv.slice(2).filter((_, i) => i !== backendFlag - 2 && i !== backendFlag - 1));
} else if (isMain) {
  const { values } = parseArgs({
    options: {
      memory: { type: "string" },
      guest: { type: "string" },
      channels: { type: "string" },
      "compression-workers": { type: "string" },
      "link-mbps": { type: "string" },
      transport: { type: "string" },
      "dirty-rate": { type: "string" },
      checksum: { type: "boolean" },
      json: { type: "boolean" },
    },
  });
  const list = (s: string | undefined, d: string) => (s ?? d).split(",").map((x) => x.trim());
  const sizes = list(values.memory, "1GiB").map(parseSize);
  const guests = list(values.guest, "dense,zero-heavy").map((g) => {
    if (g !== "dense" && g !== "zero-heavy") throw new Error(`--guest: dense or zero-heavy, not ${g}`);
    return g;
  });
  const channelCounts = list(values.channels, "1").map(Number);
  const workers = values["compression-workers"] === undefined ? undefined : Number(values["compression-workers"]);
  const compressions = workers === undefined ? [undefined] : [undefined, workers];
  const linkMBps = values["link-mbps"] === undefined ? undefined : Number(values["link-mbps"]);
  const results: MigrationBenchResult[] = [];
  if (!values.json) process.stdout.write(`${HEADER}\n${HEADER.replace(/[^|]+/g, "---")}\n`);
  for (const memoryBytes of sizes)
    for (const guest of guests)
      for (const channels of channelCounts)
        for (const compressionWorkers of compressions) {
          const r = await runMigrationBench({
            memoryBytes,
            guest,
            channels,
            transport: values.transport === "tcp" ? "tcp" : "unix",
            checksum: values.checksum === true,
            ...(compressionWorkers === undefined ? {} : { compressionWorkers }),
            ...(linkMBps === undefined ? {} : { linkMBps }),
            ...(values["dirty-rate"] === undefined ? {} : { dirtyPagesPerSecond: Number(values["dirty-rate"]) }),
          });
          results.push(r);
          if (!values.json) process.stdout.write(`${formatMigrationRow(r)}\n`);
        }
  if (values.json) process.stdout.write(`${JSON.stringify(results)}\n`);
}
