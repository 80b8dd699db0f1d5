/**
 * The VM description (the device model a migration exports) and one running
 * `qemu-system-x86_64` process: spawned with a QMP socket and its serial
 * console in a file, always reaped.
 *
 * @module
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { QmpClient, QmpClosedError, type QemuVersion } from "./qmp-client.js";
import { SerialLog } from "./serial-log.js";

/** The machine type a description pins when it names none: QEMU 7.2's q35, versioned (`q35` is an alias that moves). */
export const DEFAULT_MACHINE_TYPE = "pc-q35-7.2";

/**
 * A VM's device model: everything both QEMUs of a migration must agree on.
 * Memory and device state are not here; they travel over the migration socket.
 */
export interface QemuVmSpec {
  /** A versioned machine type, e.g. `pc-q35-7.2`. Default {@link DEFAULT_MACHINE_TYPE}. */
  readonly machine?: string;
  /** Guest RAM in MiB (`-m`). */
  readonly memoryMiB: number;
  /** Virtual CPUs (`-smp`). Default 1. */
  readonly cpus?: number;
  /** The kernel image (`-kernel`), an absolute path valid on both hosts. */
  readonly kernel: string;
  /** The initrd (`-initrd`), an absolute path valid on both hosts. */
  readonly initrd?: string;
  /** The kernel command line (`-append`). */
  readonly append?: string;
  /** `tcg` (software, works anywhere) or `kvm`. Default `tcg`. */
  readonly accel?: "tcg" | "kvm";
}

const MACHINE = /^[a-z0-9][a-z0-9.-]{0,63}$/;

/** Checks a spec (e.g. one a source exported); returns the problem, or undefined. */
export function specProblem(spec: QemuVmSpec): string | undefined {
  const machine = spec.machine ?? DEFAULT_MACHINE_TYPE;
  if (!MACHINE.test(machine)) return `machine type ${JSON.stringify(machine)} is not a machine type name`;
  if (!/\d+\.\d+$/.test(machine)) return `machine type ${JSON.stringify(machine)} is not versioned (e.g. pc-q35-7.2)`;
  if (!Number.isInteger(spec.memoryMiB) || spec.memoryMiB < 16 || spec.memoryMiB > 1 << 20)
    return `memoryMiB ${spec.memoryMiB} is not an integer from 16 to 1048576`;
  const cpus = spec.cpus ?? 1;
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > 255) return `cpus ${cpus} is not an integer from 1 to 255`;
  for (const [k, v] of [
    ["kernel", spec.kernel],
    ["initrd", spec.initrd],
  ] as const) {
    if (v === undefined) continue;
    if (typeof v !== "string" || !v.startsWith("/") || v.includes(",") || v.includes("\0"))
      return `${k} must be an absolute path without commas`;
  }
  if (spec.append !== undefined && (typeof spec.append !== "string" || spec.append.includes("\0")))
    return "append must be a string";
  if (spec.accel !== undefined && spec.accel !== "tcg" && spec.accel !== "kvm")
    return `accel ${spec.accel} is not tcg or kvm`;
  return undefined;
}

/** The device-model argv of a spec: what both sides run (without monitor, console and `-incoming`). */
export function deviceModelArgv(spec: QemuVmSpec): string[] {
  const argv = [
    "-machine",
    `${spec.machine ?? DEFAULT_MACHINE_TYPE},accel=${spec.accel ?? "tcg"}`,
    "-m",
    String(spec.memoryMiB),
    "-smp",
    String(spec.cpus ?? 1),
    "-nodefaults",
    "-no-user-config",
    "-display",
    "none",
    "-kernel",
    spec.kernel,
  ];
  if (spec.initrd !== undefined) argv.push("-initrd", spec.initrd);
  if (spec.append !== undefined) argv.push("-append", spec.append);
  return argv;
}

const probes = new Map<string, Promise<{ version: string; machines: Set<string> }>>();

/**
 * The QEMU binary's version and machine types (`--version`, `-machine help`),
 * without starting a VM. Asked once per binary and process (two runs of QEMU
 * cost about 250 ms of an ImportSandbox); a failed probe is asked again.
 */
export function probeQemu(binary: string): Promise<{ version: string; machines: Set<string> }> {
  let probe = probes.get(binary);
  if (probe === undefined) {
    probe = runProbe(binary);
    probes.set(binary, probe);
    probe.catch(() => probes.delete(binary));
  }
  return probe;
}

async function runProbe(binary: string): Promise<{ version: string; machines: Set<string> }> {
  const run = (args: string[]) =>
    new Promise<string>((resolve, reject) =>
      execFile(binary, args, { timeout: 30_000 }, (e, out) => (e ? reject(e) : resolve(out))),
    );
  const [versionText, machineText] = await Promise.all([run(["--version"]), run(["-machine", "help"])]);
  const version = /version (\d+\.\d+\.\d+)/.exec(versionText)?.[1];
  if (version === undefined) throw new Error(`cannot read the version of ${binary}: ${versionText.slice(0, 100)}`);
  const machines = new Set(
    machineText
      .split("\n")
      .slice(1)
      .map((l) => l.split(/\s+/)[0] ?? "")
      .filter((m) => m !== ""),
  );
  return { version, machines };
}

/** How a QEMU process ended. */
export interface QemuExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A wait on a QEMU (its console, its monitor) ended because the process exited. */
export class QemuExitedError extends Error {
  override readonly name = "QemuExitedError";
  constructor(
    readonly exit: QemuExit,
    stderrTail: string,
    lastConsoleLines: readonly string[] = [],
  ) {
    const console = lastConsoleLines.length === 0 ? "" : `; the guest's console ended: ${lastConsoleLines.join(" | ")}`;
    super(`QEMU exited (status ${exit.code ?? exit.signal})${stderrTail === "" ? "" : `: ${stderrTail}`}${console}`);
  }
}

/** What {@link QemuProcess.start} runs. */
export interface QemuStartOptions {
  readonly spec: QemuVmSpec;
  /** A private folder for the QMP socket and the serial log. */
  readonly dir: string;
  /** A short name for the files (`source`, `destination`). */
  readonly name: string;
  /** Start with `-incoming defer`: created, not running, waiting for `migrate-incoming`. */
  readonly incoming?: boolean;
  readonly binary?: string;
  readonly signal?: AbortSignal;
}

/** One running QEMU: its process, its QMP connection and its serial console. */
export class QemuProcess {
  readonly #child: ChildProcess;
  readonly qmp: QmpClient;
  readonly serial: SerialLog;
  /** Settles when the process has exited (it always does after dispose). */
  readonly exited: Promise<QemuExit>;
  readonly #stderr: string[];
  readonly #files: string[];
  #exit: QemuExit | undefined;

  private constructor(
    child: ChildProcess,
    exited: Promise<QemuExit>,
    qmp: QmpClient,
    serial: SerialLog,
    stderr: string[],
    files: string[],
  ) {
    this.#child = child;
    this.exited = exited;
    this.qmp = qmp;
    this.serial = serial;
    this.#stderr = stderr;
    this.#files = files;
    void exited.then((e) => {
      this.#exit = e;
      // A guest whose QEMU is gone prints nothing more: waits on its console end here.
      void serial.flush().then(() => serial.end(new QemuExitedError(e, this.stderrTail(), serial.lines.slice(-3))));
    });
  }

  /** Spawns QEMU and connects to its monitor. On any failure the process is reaped before the error is thrown. */
  static async start(options: QemuStartOptions): Promise<QemuProcess> {
    const qmpPath = join(options.dir, `${options.name}.qmp`);
    const serialPath = join(options.dir, `${options.name}.serial`);
    await rm(qmpPath, { force: true });
    await rm(serialPath, { force: true });
    const argv = [
      ...deviceModelArgv(options.spec),
      "-qmp",
      `unix:${qmpPath},server=on,wait=off`,
      "-serial",
      `file:${serialPath}`,
      "-monitor",
      "none",
      "-no-reboot",
      ...(options.incoming ? ["-incoming", "defer"] : []),
    ];
    const child = spawn(options.binary ?? "qemu-system-x86_64", argv, { stdio: ["ignore", "ignore", "pipe"] });
    const stderr: string[] = [];
    child.stderr!.setEncoding("utf8").on("data", (t: string) => {
      stderr.push(t);
      if (stderr.length > 50) stderr.shift();
    });
    const exited = new Promise<QemuExit>((resolve) => {
      child.once("exit", (code, signal) => resolve({ code, signal }));
      child.once("error", () => resolve({ code: null, signal: null }));
    });
    let qmp: QmpClient | undefined;
    try {
      qmp = await connectWhenReady(qmpPath, exited, stderr, options.signal);
      const serial = new SerialLog(serialPath);
      return new QemuProcess(child, exited, qmp, serial, stderr, [qmpPath, serialPath]);
    } catch (e) {
      qmp?.close();
      child.kill("SIGKILL");
      await exited;
      await rm(qmpPath, { force: true });
      throw e;
    }
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** The exit, once the process is gone. */
  get exit(): QemuExit | undefined {
    return this.#exit;
  }

  /** QEMU's last lines on stderr: where it says why a migration failed. */
  stderrTail(): string {
    return this.#stderr.join("").trim().split("\n").slice(-5).join("\n");
  }

  /** `query-status`'s `status` ("running", "inmigrate", "postmigrate", "paused", ...). */
  async status(): Promise<string> {
    const s = await this.qmp.execute<{ status: string }>("query-status");
    return s.status;
  }

  /** Asks QEMU to quit, then kills it if it has not exited within `graceMs`; resolves once it is reaped. */
  async stop(graceMs = 5000): Promise<QemuExit> {
    if (this.#exit !== undefined) return this.#exit;
    this.qmp.execute("quit").catch(() => {
      // it may exit before answering
    });
    const timer = setTimeout(() => this.#child.kill("SIGKILL"), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Kills the process at once (tests: a host dying); resolves once it is reaped. */
  async kill(): Promise<QemuExit> {
    if (this.#exit === undefined) this.#child.kill("SIGKILL");
    return this.exited;
  }

  /** Stops QEMU (quit, then SIGKILL), closes the monitor and the serial reader, removes the files. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop(2000);
    this.qmp.close();
    this.serial.close();
    await Promise.all(this.#files.map((f) => rm(f, { force: true })));
  }
}

/** Connects once QEMU has created its monitor socket; fails when the process exits first. */
async function connectWhenReady(
  path: string,
  exited: Promise<QemuExit>,
  stderr: string[],
  signal: AbortSignal | undefined,
): Promise<QmpClient> {
  let gone: QemuExit | undefined;
  void exited.then((e) => (gone = e));
  for (let attempt = 0; ; attempt++) {
    signal?.throwIfAborted();
    if (gone !== undefined)
      throw new QmpClosedError(
        `QEMU exited (status ${gone.code ?? gone.signal}) before its monitor was up: ${stderr.join("").trim()}`,
      );
    try {
      return await QmpClient.connect(path, signal === undefined ? {} : { signal });
    } catch (e) {
      if (!(e instanceof QmpClosedError) || attempt > 600) throw e;
    }
    // The socket appears a few ms after the spawn; QEMU offers no other readiness signal.
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** `major.minor.micro` of a greeting. */
export function versionString(v: QemuVersion): string {
  return `${v.major}.${v.minor}.${v.micro}`;
}
