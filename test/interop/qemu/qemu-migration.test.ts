// The QEMU backend against real QEMU 7.2 processes (TCG here): the reference
// shims and the orchestrator, unchanged, move a running guest that keeps
// dirtying and verifying its memory. One VM pair at a time.
import { createServer } from "node:net";
import { beforeAll, describe, expect, it } from "vitest";
import {
  MemoryTransport,
  Phase,
  PhaseState,
  migrate,
  type MigrateOptions,
  type MigrationEvent,
} from "ttrpc-es/migration";
import type { QemuSocketMode } from "ttrpc-es/migration/qemu";
import { tempDir } from "../../common.js";
import {
  alive,
  ensureQemuGuest,
  guestSpec,
  parseTick,
  startQemuShim,
  type GuestShape,
  type QemuShim,
} from "./qemu-shims.js";

beforeAll(async () => {
  await ensureQemuGuest();
});

/** Boots the source guest and waits for its first verified tick: it runs and its memory checks pass. */
async function bootSource(shim: QemuShim): Promise<void> {
  const vm = await shim.backend.start();
  await vm.serial.waitFor((l) => parseTick(l)?.verify === "ok");
}

/**
 * Waits until the destination's guest prints a verified tick after the
 * source's last one; no tick after it may say BAD. Rejects as soon as the
 * destination QEMU exits (a guest the migration broke panics, and QEMU quits).
 */
async function destinationContinues(source: QemuShim, destination: QemuShim): Promise<{ last: number; next: number }> {
  const last = source.ticks.at(-1)!.n;
  const vm = destination.backend.vm;
  if (vm === undefined) {
    const console = destination.events.flatMap((e) => (e.type === "serial" ? [e.line] : [])).slice(-3);
    throw new Error(`the destination VM is gone after the migration; its console ended: ${console.join(" | ")}`);
  }
  const line = await vm.serial.waitFor((l) => {
    const t = parseTick(l);
    return t !== undefined && t.n > last && t.verify !== "none";
  });
  const next = parseTick(line)!;
  expect(next.verify, `the destination guest's memory after tick ${last}`).toBe("ok");
  return { last, next: next.n };
}

/** A free loopback TCP port (bound, read, released). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface Pair {
  readonly dir: string;
  readonly source: QemuShim;
  readonly destination: QemuShim;
}

/** Two shims, the source's guest booted and verifying. */
async function startPair(socket: QemuSocketMode = "uri", maxBandwidth?: number, shape: GuestShape = {}): Promise<Pair> {
  const dir = tempDir();
  const bw = maxBandwidth === undefined ? {} : { maxBandwidth };
  const source = await startQemuShim("source", dir, { vm: guestSpec(shape), socket, ...bw });
  const destination = await startQemuShim("destination", dir, { socket });
  await bootSource(source);
  return { dir, source, destination };
}

function run(p: Pair, extra: Partial<MigrateOptions> = {}) {
  return migrate({
    source: p.source.address,
    destination: p.destination.address,
    transport: "unix",
    transferAddress: `${p.dir}/memory.sock`,
    initOptions: { memoryTransport: MemoryTransport.TCP },
    ...extra,
  });
}

/** Checks the source's guest is running again: a tick newer than any it printed before. */
async function sourceTicksOn(p: Pair): Promise<void> {
  const vm = p.source.backend.vm!;
  expect(await vm.status()).toBe("running");
  const last = p.source.ticks.at(-1)!.n;
  const line = await vm.serial.waitFor((l) => (parseTick(l)?.n ?? 0) > last);
  expect(parseTick(line)!.verify).not.toBe("BAD");
}

/** The source's progress event of a phase, as the orchestrator saw it. */
const onPhase = (side: "source" | "destination", phase: Phase, then: () => void) => (e: MigrationEvent) => {
  if (e.type === "notification" && e.side === side && e.phase === phase) then();
};

// A TCG guest on a shared 2-core host can crawl: a generous bound, never a timing assertion.
describe("QEMU backend: live migration of a running guest", { timeout: 180_000 }, () => {
  it("migrates over a unix socket; the guest goes on counting and verifying on the destination", async () => {
    const dir = tempDir();
    const source = await startQemuShim("source", dir, { vm: guestSpec() });
    const destination = await startQemuShim("destination", dir, {});
    await bootSource(source);
    const result = await migrate({
      source: source.address,
      destination: destination.address,
      transport: "unix",
      transferAddress: `${dir}/memory.sock`,
      initOptions: { memoryTransport: MemoryTransport.TCP },
    });
    expect(result.error).toBeUndefined();
    expect(result.ok).toBe(true);
    const { last, next } = await destinationContinues(source, destination);
    expect(next).toBeGreaterThan(last);
    expect(destination.ticks.filter((t) => t.verify === "BAD")).toEqual([]);
    expect(source.backend.vm).toBeUndefined();
    expect(result.blackoutMs).toBeGreaterThan(0);
  });

  it("migrates over loopback TCP (QEMU connects itself)", async () => {
    const p = await startPair();
    const result = await run(p, { transport: "tcp", transferAddress: `127.0.0.1:${await freePort()}` });
    expect(result.error).toBeUndefined();
    expect(result.ok).toBe(true);
    const { last, next } = await destinationContinues(p.source, p.destination);
    expect(next).toBeGreaterThan(last);
  });

  it("migrates over a connected socket the shims hand to QEMU by fd (getfd, SCM_RIGHTS)", async () => {
    const p = await startPair("fd");
    const result = await run(p);
    expect(result.error).toBeUndefined();
    expect(result.ok).toBe(true);
    const { last, next } = await destinationContinues(p.source, p.destination);
    expect(next).toBeGreaterThan(last);
    expect(p.destination.ticks.filter((t) => t.verify === "BAD")).toEqual([]);
  });

  it("a cancel mid-transfer: the source runs on and ticks after; the destination QEMU is gone", async () => {
    // 8 MiB/s keeps the transfer going long enough to cancel it while it runs.
    const p = await startPair("uri", 8 * 1024 * 1024);
    const user = new AbortController();
    const result = await run(p, {
      signal: user.signal,
      onEvent: onPhase("source", Phase.TRANSFER_IN_PROGRESS, () => user.abort(new Error("operator cancel"))),
    });
    expect(result.ok).toBe(false);
    expect(result.source).toBe("cancelled");
    expect(result.recovered).toBe(true);
    await sourceTicksOn(p);
    expect(p.destination.backend.vm).toBeUndefined();
    const dst = p.destination.events.find((e) => e.type === "vm" && e.state === "started");
    expect(alive(dst?.type === "vm" ? dst.pid : undefined)).toBe(false);
  });

  it("the pass limit forces the blackout: downtime-limit raised, the migration completes", async () => {
    const p = await startPair("uri", 8 * 1024 * 1024);
    const result = await run(p, {
      initOptions: {
        memoryTransport: MemoryTransport.TCP,
        // At 8 MiB/s the pages the guest dirties in a pass take longer to send than QEMU's default
        // 300 ms blackout: it would go on passing, so the pass limit has to end it. A 1 ms target
        // would too, but hands over a broken guest under TCG (docs/migration-qemu.md, known issue).
        memoryTransferThrottleParams: { maximumNumberOfBrownoutTransferPasses: 1 },
      },
    });
    expect(result.error).toBeUndefined();
    expect(result.ok).toBe(true);
    expect(p.source.events.some((e) => e.type === "forced")).toBe(true);
    const done = p.source.events.find((e) => e.type === "done");
    expect(done?.type === "done" && done.stats.forcedSwitchover).toBe(true);
    await destinationContinues(p.source, p.destination);
  });

  it("the blackout threshold cancels at the pass limit; the source recovers", async () => {
    // At 32 MiB/s the pages a guest dirtying without pause writes between passes project a blackout
    // of tens of ms. The migration is cancelled, so no guest is handed over.
    const p = await startPair("uri", 32 * 1024 * 1024, { napSeconds: 0 });
    const result = await run(p, {
      initOptions: {
        memoryTransport: MemoryTransport.TCP,
        cancelIfBlackoutThresholdExceeds: true,
        memoryTransferThrottleParams: {
          targetBlackoutTransferTime: 1,
          maximumNumberOfBrownoutTransferPasses: 2,
          blackoutTimeThresholdForCancellingMigration: 1,
        },
      },
    });
    expect(result.ok).toBe(false);
    expect(result.source).toBe("cancelled");
    const cancel = p.source.events.find((e) => e.type === "threshold-cancel");
    expect(cancel?.type === "threshold-cancel" && cancel.expectedDowntimeMs).toBeGreaterThan(1);
    expect(result.recovered).toBe(true);
    await sourceTicksOn(p);
    expect(p.destination.backend.vm).toBeUndefined();
  });

  it("the destination killed mid-transfer: PHASE_FAILED, the source recovered, no QEMU left", async () => {
    const p = await startPair("uri", 8 * 1024 * 1024);
    const result = await run(p, {
      onEvent: onPhase("destination", Phase.TRANSFER_IN_PROGRESS, () => void p.destination.backend.vm?.kill()),
    });
    expect(result.ok).toBe(false);
    // Both QEMUs see the stream break at once. The side the orchestrator hears
    // from first reports the failure; the other may be cancelled by the abort
    // path before its own report (the server then says CANCELLED).
    const failures = result.notifications
      .filter((n) => n.phase === Phase.FAILED)
      .map((n) => `${n.side}:${PhaseState[n.state]}`);
    expect(failures.some((f) => f === "destination:DESTINATION_FAILED" || f === "source:SOURCE_FAILED")).toBe(true);
    expect(result.notifications.some((n) => n.phase === Phase.DONE)).toBe(false);
    expect(result.recovered).toBe(true);
    await sourceTicksOn(p);
    expect(p.destination.backend.vm).toBeUndefined();
    const dst = p.destination.events.find((e) => e.type === "vm" && e.state === "started");
    expect(alive(dst?.type === "vm" ? dst.pid : undefined)).toBe(false);
  });
});
