// `ttrpc-es migration demo` (what `npm start` runs): two reference shims as
// separate processes on unix sockets in a temp folder, a running simulated
// sandbox on the source, a live migration through the orchestrator with
// live progress, then the verified result.

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { randomUUID } from "node:crypto";
import { Phase, PhaseState } from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_options_pb.js";
import { migrate } from "../migration/orchestrator.js";
import type { MigrationResult } from "../migration/orchestrator-types.js";
import type { TransferEvent, TransferStats } from "../migration/simulated/transfer-events.js";
import { DEFAULT_DIRTY_PAGES_PER_SECOND, DEFAULT_MEMORY_BYTES } from "../migration/simulated/simulated-vm.js";
import { PRE_COPY_DEFAULTS } from "../migration/simulated/pre-copy-params.js";
import {
  formatBytes,
  initializeOptions,
  initOptions,
  INIT_OPTIONS_HELP,
  parseSize,
  UsageError,
  vmOptions,
  VM_OPTIONS_HELP,
} from "./migration-options.js";
import { ProgressView } from "./migration-progress.js";

export const DEMO_HELP = `usage: ttrpc-es migration demo [options]

Starts a source and a destination reference shim (\`migration serve\`) as child
processes on unix sockets in a temp folder, migrates a running simulated
sandbox between them, and prints what moved and the verified checksum.

${VM_OPTIONS_HELP}
  --backend simulated|qemu       qemu: migrate a real QEMU guest (see --backend qemu --help)
  --json                         one JSON object on stdout instead of live output
  -h, --help                     this help

${INIT_OPTIONS_HELP}
`;

interface Shim {
  readonly child: ChildProcess;
  readonly address: string;
  readonly exited: Promise<void>;
}

/** Starts `migration serve` as a child process and waits until it listens. */
async function startShim(
  name: string,
  args: string[],
  onEvent: (e: TransferEvent) => void,
  spawned: Shim[],
): Promise<Shim> {
  const main = fileURLToPath(new URL("./main.js", import.meta.url));
  const child = spawn(process.execPath, [main, "migration", "serve", ...args, "--events"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  spawned.push({ child, address: "", exited });
  const address = await new Promise<string>((resolve, reject) => {
    const onExit = (code: number | null) =>
      reject(new Error(`the ${name} shim exited (status ${code}) before listening`));
    child.once("exit", onExit);
    child.once("error", reject);
    createInterface({ input: child.stdout! }).on("line", (text) => {
      let e: { event?: string; address?: string };
      try {
        e = JSON.parse(text) as typeof e;
      } catch {
        return;
      }
      if (e.event === "listening") {
        child.off("exit", onExit);
        resolve(e.address!);
      } else if (e.event === "transfer") {
        onEvent(e as unknown as TransferEvent);
      }
    });
  });
  return { child, address, exited };
}

async function stopShim(shim: Shim): Promise<void> {
  if (shim.child.exitCode !== null || shim.child.signalCode !== null) return;
  shim.child.kill("SIGTERM");
  const timer = setTimeout(() => shim.child.kill("SIGKILL"), 5000);
  await shim.exited;
  clearTimeout(timer);
}

/** What a finished demo reports. */
interface DemoOutcome {
  readonly result: MigrationResult;
  readonly source: TransferStats | undefined;
  readonly destination: TransferStats | undefined;
  readonly error: string | undefined;
  /** The migration succeeded and both images have the same digest. */
  readonly verified: boolean;
  readonly durationMs: number;
  readonly sessionId: string;
  readonly memoryBytes: number;
  readonly dirtyRate: string;
  readonly targetBlackoutMs: number;
}

function jsonSummary(o: DemoOutcome): string {
  const { result, source: s, destination: d } = o;
  return `${JSON.stringify({
    ok: o.verified,
    sessionId: o.sessionId,
    durationMs: Math.round(o.durationMs),
    migrationMs: Math.round(result.durationMs),
    memoryBytes: o.memoryBytes,
    pageBytesMoved: s?.pageBytes ?? 0,
    wireBytes: s?.wireBytes ?? 0,
    pagesMoved: s?.pages ?? 0,
    brownoutPasses: s?.brownoutPasses ?? 0,
    blackoutPages: s?.blackoutPages ?? 0,
    blackoutMs: result.blackoutMs ?? null,
    blackoutMeasuredMs: s?.blackoutMs ?? null,
    checksumVerification: s?.checksums ?? false,
    digest: { algorithm: "sha256", source: s?.digest ?? null, destination: d?.digest ?? null },
    source: result.source,
    destination: result.destination,
    error: o.error ?? null,
    phases: result.notifications.map((n) => ({
      side: n.side,
      phase: `PHASE_${Phase[n.phase]}`,
      state: `PHASE_STATE_${PhaseState[n.state]}`,
      atMs: Math.round(n.atMs),
    })),
  })}\n`;
}

function textSummary(o: DemoOutcome): string {
  const { result, source: s } = o;
  if (!o.verified || s === undefined) {
    const recovered = result.recovered === undefined ? "" : `, source recovered: ${result.recovered}`;
    return [
      "",
      `✗ migration failed: ${o.error ?? "image digests differ"}`,
      `  source ${result.source}, destination ${result.destination}${recovered}`,
      ...result.abortErrors.map((e) => `  abort path: ${e}`),
      "",
    ].join("\n");
  }
  const throughput = (s.pageBytes / s.durationMs) * 1000;
  const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  const checksums = s.checksums ? "every page verified by the destination (CRC-32)" : "off (whole-image digest only)";
  return [
    "",
    `✓ migration verified in ${seconds(result.durationMs)} (demo total ${seconds(o.durationMs)})`,
    `  memory image     ${formatBytes(o.memoryBytes)}, guest dirtying ${o.dirtyRate} pages/s`,
    `  bytes moved      ${formatBytes(s.pageBytes)} of pages (${s.pages} pages), ` +
      `${formatBytes(s.wireBytes)} on the wire, ${formatBytes(throughput)}/s`,
    `  passes           ${s.brownoutPasses} brownout + 1 blackout (${s.blackoutPages} pages); ` +
      `guest throttled to ${s.throttlePercent} %`,
    `  blackout         ${result.blackoutMs} ms ` +
      `(measured ${s.blackoutMs.toFixed(1)} ms, target ${o.targetBlackoutMs} ms)`,
    `  checksums        ${checksums}`,
    `  image SHA-256    ${s.digest}  source = destination`,
    `  result           destination running, source stopped, both shims cleaned up`,
    "",
  ].join("\n");
}

export async function demo(argv: string[]): Promise<number> {
  // `--backend qemu` moves a real QEMU guest instead (a module of its own, loaded only then).
  const backend = argv.indexOf("--backend");
  if (backend >= 0 && argv[backend + 1] === "qemu") {
    const { qemuDemo } = await import("./migration-demo-qemu.js");
    return qemuDemo([...argv.slice(0, backend), ...argv.slice(backend + 2)]);
  }
  if (backend >= 0 && argv[backend + 1] !== "simulated") throw new UsageError("--backend is simulated or qemu");
  if (backend >= 0) argv = [...argv.slice(0, backend), ...argv.slice(backend + 2)];
  const { values } = parseArgs({
    args: argv,
    options: { json: { type: "boolean" }, help: { type: "boolean", short: "h" }, ...vmOptions, ...initOptions },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(DEMO_HELP);
    return 0;
  }
  const init = initializeOptions(values, true);
  const memoryBytes = values.memory === undefined ? DEFAULT_MEMORY_BYTES : parseSize(values.memory, "--memory");
  const dirtyRate = values["dirty-rate"] ?? String(DEFAULT_DIRTY_PAGES_PER_SECOND);
  const view = values.json ? undefined : new ProgressView(process.stdout);
  const started = performance.now();
  const done: Partial<Record<"source" | "destination", TransferStats>> = {};
  const failed: Partial<Record<"source" | "destination", string>> = {};
  const onTransfer = (e: TransferEvent) => {
    if (e.type === "done") done[e.side] = e.stats;
    if (e.type === "failed") failed[e.side] = e.message;
    view?.transfer(e);
  };
  const tmp = await mkdtemp(join(tmpdir(), "ttrpc-es-demo-"));
  const shims: Shim[] = [];
  const interrupt = new AbortController();
  const onSigint = () => interrupt.abort(new Error("interrupted (SIGINT)"));
  process.once("SIGINT", onSigint);
  try {
    const vmArgs = ["--memory", String(memoryBytes), "--dirty-rate", dirtyRate];
    if (values["page-size"] !== undefined) vmArgs.push("--page-size", values["page-size"]);
    if (values.processors !== undefined) vmArgs.push("--processors", values.processors);
    view?.line(
      `ttrpc-es migration demo: a ${formatBytes(memoryBytes)} simulated sandbox, guest dirtying ${dirtyRate} pages/s`,
    );
    const [source, destination] = await Promise.all([
      startShim(
        "source",
        ["--address", `unix:${join(tmp, "source.sock")}`, "--sandbox", "demo-sandbox", ...vmArgs],
        onTransfer,
        shims,
      ),
      startShim("destination", ["--address", `unix:${join(tmp, "destination.sock")}`], onTransfer, shims),
    ]);
    view?.line(`  source shim      pid ${source.child.pid}  ${source.address}`);
    view?.line(`  destination shim pid ${destination.child.pid}  ${destination.address}`);
    view?.line("");
    const sessionId = randomUUID();
    view?.startClock();
    const result = await migrate({
      source: source.address,
      destination: destination.address,
      sessionId,
      transferAddress: join(tmp, "memory.sock"),
      initOptions: init,
      signal: interrupt.signal,
      ...(view === undefined ? {} : { onEvent: (e) => view.orchestrator(e) }),
    });
    view?.finish();
    const s = done.source;
    const d = done.destination;
    const verified = result.ok && s !== undefined && d !== undefined && s.digest !== "" && s.digest === d.digest;
    const outcome: DemoOutcome = {
      result,
      source: s,
      destination: d,
      error: result.error ?? failed.source ?? failed.destination,
      verified,
      durationMs: performance.now() - started,
      sessionId,
      memoryBytes,
      dirtyRate,
      targetBlackoutMs:
        init.memoryTransferThrottleParams?.targetBlackoutTransferTime ?? PRE_COPY_DEFAULTS.targetBlackoutMs,
    };
    process.stdout.write(values.json ? jsonSummary(outcome) : textSummary(outcome));
    return verified ? 0 : 1;
  } finally {
    process.off("SIGINT", onSigint);
    await Promise.all(shims.map(stopShim));
    await rm(tmp, { recursive: true, force: true });
  }
}
