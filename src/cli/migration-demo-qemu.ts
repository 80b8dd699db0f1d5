// `ttrpc-es migration demo --backend qemu` (what `npm run demo:qemu` runs):
// two reference shims, each a Migration server with a QEMU backend owning a
// real QEMU process, migrate a running Linux guest from one to the other
// through the orchestrator. Shows the timeline, the guest's serial ticks from
// both sides and the figures QEMU measured. The guest is the one
// test/interop/qemu/setup.sh builds from Debian packages.

import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { MemoryTransport } from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_options_pb.js";
import { createMigrationServer } from "../migration/migration-server.js";
import { migrate } from "../migration/orchestrator.js";
import type { MigrationResult } from "../migration/orchestrator-types.js";
import { createQemuBackend, type QemuBackend, type QemuBackendEvent } from "../migration/qemu/qemu-backend.js";
import type { QemuMigrationStats } from "../migration/qemu/qemu-source-transfer.js";
import type { QemuSocketMode } from "../migration/qemu/migration-socket.js";
import type { QemuVmSpec } from "../migration/qemu/qemu-vm.js";
import { parseCount, UsageError } from "./migration-options.js";
import { ProgressView } from "./migration-progress.js";

export const QEMU_DEMO_HELP = `usage: ttrpc-es migration demo --backend qemu [options]

Starts two reference shims, each with a QEMU backend owning a real
qemu-system-x86_64, boots a Linux guest on the source (it keeps rewriting and
checking its memory and prints "tick N verify=ok" on its serial console) and
live-migrates it to the destination. Needs QEMU and the guest of
test/interop/qemu/setup.sh (npm run demo:qemu runs it first).

  --memory MIB        guest RAM (default 256)
  --working-set MIB   memory the guest keeps dirty (default 64)
  --socket uri|fd     QEMU connects itself (uri), or gets the shims' socket by fd (default uri)
  --transport unix|tcp  (default unix)
  --kernel PATH --initrd PATH   the guest (default: test/interop/qemu/.build/guest)
  --json              one JSON object on stdout instead of live output
  -h, --help          this help
`;

const options = {
  memory: { type: "string" },
  "working-set": { type: "string" },
  socket: { type: "string" },
  transport: { type: "string" },
  kernel: { type: "string" },
  initrd: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

function guestSpec(values: { [K in keyof typeof options]?: string | boolean }): QemuVmSpec {
  const guest = fileURLToPath(new URL("../../../test/interop/qemu/.build/guest/", import.meta.url));
  const kernel = (values.kernel as string | undefined) ?? join(guest, "vmlinuz");
  const initrd = (values.initrd as string | undefined) ?? join(guest, "initrd");
  for (const f of [kernel, initrd])
    if (!existsSync(f))
      throw new UsageError(`${f} is missing: run bash test/interop/qemu/setup.sh, or pass --kernel/--initrd`);
  const accelFile = join(guest, "accel");
  const kvm = existsSync(accelFile) && readFileSync(accelFile, "utf8").trim() === "kvm";
  const memoryMiB = parseCount(values.memory as string | undefined, "--memory") ?? 256;
  const ws = parseCount(values["working-set"] as string | undefined, "--working-set") ?? 64;
  if (ws >= memoryMiB) throw new UsageError("--working-set must be below --memory");
  return {
    machine: "pc-q35-7.2",
    memoryMiB,
    cpus: 1,
    kernel,
    initrd,
    append: `console=ttyS0 panic=-1 quiet ws=${ws} chunk=4`,
    accel: kvm ? "kvm" : "tcg",
  };
}

interface DemoShim {
  readonly backend: QemuBackend;
  readonly address: string;
  close(): Promise<void>;
}

async function startShim(dir: string, name: string, backend: QemuBackend): Promise<DemoShim> {
  const { server, service } = createMigrationServer({ backend });
  const address = await server.listen(`unix:${join(dir, `${name}.sock`)}`);
  return {
    backend,
    address,
    close: async () => {
      await service.close();
      await server.close();
      await backend.close();
    },
  };
}

export async function qemuDemo(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
  if (values.help) {
    process.stdout.write(QEMU_DEMO_HELP);
    return 0;
  }
  const socket = (values.socket ?? "uri") as QemuSocketMode;
  if (socket !== "uri" && socket !== "fd") throw new UsageError("--socket is uri or fd");
  const transport = values.transport ?? "unix";
  if (transport !== "unix" && transport !== "tcp") throw new UsageError("--transport is unix or tcp");
  const spec = guestSpec(values);
  const view = values.json ? undefined : new ProgressView(process.stdout);
  let stats: QemuMigrationStats | undefined;
  const lastTick: Record<string, string> = {};
  const observe = (e: QemuBackendEvent) => {
    if (e.type === "serial" && /^tick \d+/.test(e.line)) {
      lastTick[e.side] = e.line;
      view?.line(`           ${e.side.padEnd(11)} guest │ ${e.line}`);
    } else if (e.type === "done") stats = e.stats;
    else if (e.type === "vm")
      view?.line(`           ${e.side.padEnd(11)} QEMU ${e.state}${e.pid === undefined ? "" : ` (pid ${e.pid})`}`);
    else if (e.type === "pass") view?.line(`           source      brownout pass ${e.pass}`);
    else if (e.type === "forced")
      view?.line(`           source      pass limit: switchover forced (downtime-limit raised)`);
  };
  const dir = await mkdtemp(join(tmpdir(), "ttrpc-es-qemu-demo-"));
  const shims: DemoShim[] = [];
  const interrupt = new AbortController();
  const onSigint = () => interrupt.abort(new Error("interrupted (SIGINT)"));
  process.once("SIGINT", onSigint);
  try {
    view?.line(
      `ttrpc-es migration demo --backend qemu: a ${spec.memoryMiB} MiB ${spec.machine} guest (${spec.accel}), ` +
        `socket ${socket} over ${transport}`,
    );
    const source = await startShim(
      dir,
      "source",
      createQemuBackend({ vm: spec, dir, socket, observe, sandboxId: "demo-vm" }),
    );
    shims.push(source);
    shims.push(await startShim(dir, "destination", createQemuBackend({ dir, socket, observe })));
    const destination = shims[1]!;
    view?.line("  booting the source guest (under TCG this takes a few seconds)...");
    const vm = await source.backend.start(interrupt.signal);
    await vm.serial.waitFor((l) => /verify=ok/.test(l), interrupt.signal);
    view?.line("");
    view?.startClock();
    const result = await migrate({
      source: source.address,
      destination: destination.address,
      transport,
      transferAddress: transport === "unix" ? join(dir, "memory.sock") : `127.0.0.1:${await freePort()}`,
      initOptions: { memoryTransport: MemoryTransport.TCP },
      signal: interrupt.signal,
      ...(view === undefined ? {} : { onEvent: (e) => view.orchestrator(e) }),
    });
    // The guest's next verified tick, printed by the destination's QEMU.
    const continued = result.ok
      ? await destination.backend.vm?.serial.waitFor(
          (l) => /verify=ok/.test(l),
          AbortSignal.any([interrupt.signal, AbortSignal.timeout(60_000)]),
        )
      : undefined;
    return report(result, stats, lastTick, continued, values.json === true);
  } finally {
    process.off("SIGINT", onSigint);
    for (const s of shims.reverse()) await s.close();
    await rm(dir, { recursive: true, force: true });
  }
}

function report(
  result: MigrationResult,
  stats: QemuMigrationStats | undefined,
  lastTick: Record<string, string>,
  continued: string | undefined,
  json: boolean,
): number {
  const ok = result.ok && continued !== undefined && !/BAD/.test(continued);
  if (json) {
    process.stdout.write(
      `${JSON.stringify({
        ok,
        migrationMs: Math.round(result.durationMs),
        blackoutMs: result.blackoutMs ?? null,
        stats: stats ?? null,
        sourceLastTick: lastTick.source ?? null,
        destinationTick: continued ?? null,
        error: result.error ?? null,
      })}\n`,
    );
    return ok ? 0 : 1;
  }
  if (!ok || stats === undefined) {
    process.stdout.write(`\n✗ migration failed: ${result.error ?? "the guest did not go on on the destination"}\n`);
    return 1;
  }
  const out = [
    "",
    `✓ the guest runs on the destination: "${continued}" (last on the source: "${lastTick.source}")`,
    `  total            ${stats.totalMs} ms (QEMU's total-time; orchestrator ${Math.round(result.durationMs)} ms)`,
    `  passes           ${stats.passes}${stats.forcedSwitchover ? " (switchover forced at the pass limit)" : ""}`,
    `  blackout         ${stats.downtimeMs} ms (QEMU's downtime)`,
    `  moved            ${(stats.transferredBytes / 1048576).toFixed(1)} MiB at ${(stats.mbps / 8).toFixed(0)} MB/s`,
    "  result           destination QEMU running, source QEMU quit, both shims cleaned up",
  ];
  process.stdout.write(`${out.join("\n")}\n`);
  return 0;
}

async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
