// Helpers of the QEMU interop tests: the guest built by setup.sh (a Debian
// kernel and a busybox init that dirties, verifies and ticks on ttyS0), and
// two reference shims in this process, each with a QemuBackend owning a real
// QEMU. One VM pair at a time: every TCG guest takes a core.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { onTestFinished } from "vitest";
import { createMigrationServer } from "ttrpc-es/migration";
import {
  createQemuBackend,
  type QemuBackend,
  type QemuBackendEvent,
  type QemuBackendOptions,
  type QemuVmSpec,
} from "ttrpc-es/migration/qemu";
import { runSetupScript } from "../go-peer.js";

const here = fileURLToPath(new URL("./", import.meta.url));
const guestDir = join(here, ".build", "guest");

let setup: Promise<void> | undefined;

/** Installs QEMU and builds the guest once per process; a failure fails the suite, never skips it. */
export function ensureQemuGuest(): Promise<void> {
  setup ??= runSetupScript(join(here, "setup.sh"));
  return setup;
}

/** The guest's shape: RAM, and how much of it the init keeps dirty. */
export interface GuestShape {
  readonly memoryMiB?: number;
  /** Working set the guest rewrites, MiB. */
  readonly workingSetMiB?: number;
  /** MiB rewritten per tick. */
  readonly chunkMiB?: number;
  /**
   * Seconds the guest idles between ticks; 1 unless given. A guest that dirties
   * without pause, on a host with no core to spare, is handed over broken by
   * QEMU 7.2's TCG now and then (docs/migration-qemu.md, known issue): only the
   * tests that never hand the guest over run it without a pause.
   */
  readonly napSeconds?: number;
}

/** A VM description of the test guest. */
export function guestSpec(shape: GuestShape = {}): QemuVmSpec {
  const accel = readFileSync(join(guestDir, "accel"), "utf8").trim() === "kvm" ? "kvm" : "tcg";
  return {
    machine: "pc-q35-7.2",
    memoryMiB: shape.memoryMiB ?? 160,
    cpus: 1,
    kernel: join(guestDir, "vmlinuz"),
    initrd: join(guestDir, "initrd"),
    // oops=panic: a guest a migration broke dies (QEMU exits, -no-reboot) rather than spinning silently.
    append: `console=ttyS0 panic=-1 oops=panic quiet ws=${shape.workingSetMiB ?? 32} chunk=${shape.chunkMiB ?? 4} nap=${shape.napSeconds ?? 1}`,
    accel,
  };
}

/** A parsed `tick N verify=...` line. */
export interface Tick {
  readonly n: number;
  readonly verify: "ok" | "BAD" | "none";
}

export function parseTick(line: string): Tick | undefined {
  const m = /^tick (\d+) verify=(ok|BAD|none)$/.exec(line.trim());
  return m === null ? undefined : { n: Number(m[1]), verify: m[2] as Tick["verify"] };
}

export interface QemuShim {
  readonly backend: QemuBackend;
  readonly address: string;
  /** Everything the backend reported, in order. */
  readonly events: QemuBackendEvent[];
  /** The ticks its guest printed, in order. */
  readonly ticks: Tick[];
}

/** A shim with a QEMU backend on a unix socket in `dir`; closed (VM reaped) after the test. */
export async function startQemuShim(name: string, dir: string, options: QemuBackendOptions): Promise<QemuShim> {
  const events: QemuBackendEvent[] = [];
  const ticks: Tick[] = [];
  const backend = createQemuBackend({
    ...options,
    dir,
    observe: (e) => {
      events.push(e);
      if (e.type === "serial") {
        const t = parseTick(e.line);
        if (t !== undefined) ticks.push(t);
      }
    },
  });
  const { server, service } = createMigrationServer({ backend });
  onTestFinished(async () => {
    await service.close();
    await server.close();
    await backend.close();
  });
  const address = await server.listen(`unix:${join(dir, `${name}.sock`)}`);
  return { backend, address, events, ticks };
}

/** Whether a process still exists. */
export function alive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
