// The live-migration fault sweep: the orchestrator migrates a sandbox between
// two reference shims (simulated backend, real unix sockets), and one fault
// fires at one point of the workflow: the destination shim dies, the memory
// socket drops, or the orchestrator is cancelled. Every point of the workflow
// (after each RPC, on each side's every notification phase, on each transfer
// event) gets each fault; the seed picks when within the point (at once or a
// few event-loop turns later) and which progress event of a pass.
//
// Each fault has an expected outcome, fixed by where the workflow stood when
// it fired (see `expectedOutcome`): a cancel before the orchestrator has both
// DONE notifications ends "cancelled", a dead destination or a dropped memory
// socket before the transfer ended "rolled back", anything later "completed".
// The test asserts the returned outcome against it, and the grid's totals.
//
// After each fault: the source VM runs again with its memory digest unchanged
// (or, when the fault came too late to stop the migration, the destination
// runs that memory); the live shims are Idle with no VM left on the
// destination; once the shims are shut down, no socket, socket file or timer
// is left. The destination's death is in-process, as in orchestrator.test.ts:
// its backend drops every socket and its ttrpc server closes, as a killed
// process's would.
//
// `npm test` runs the whole grid once (seed 1). A longer sweep of random
// draws: FAULT_SWEEP_COUNT=500 FAULT_SWEEP_SEED=7 npx vitest run test/migration/fault-sweep.test.ts
import { appendFileSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer as netServer, connect as netConnect, type Server as NetServer, type Socket } from "node:net";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import {
  MemoryTransport,
  Phase,
  createMigrationServer,
  migrate,
  sessionNumber,
  type MigrationEvent,
  type MigrationResult,
} from "ttrpc-es/migration";
import {
  createSimulatedBackend,
  encodeEndpointDescriptor,
  type TransferEvent,
} from "../../src/migration/simulated/index.js";
import { prng, type Prng } from "../chaos/prng.js";
import { checkLeaksAfterAll, expectResourcesSettled, resourceCounts, trackTimers } from "../leak-check.js";

const FAULTS = ["kill-destination", "drop-memory-socket", "cancel"] as const;
type FaultKind = (typeof FAULTS)[number];

type Trigger =
  | { kind: "step"; side: string; step: string }
  | { kind: "notification"; side: string; phase: Phase }
  | { kind: "transfer"; event: TransferEvent };

/** A point of the workflow: the fault fires at the `occurrence`-th trigger that matches. */
interface Point {
  name: string;
  match: (t: Trigger) => boolean;
  /** How many matching triggers a migration has at least (the seed picks one of them). */
  occurrences: number;
  /**
   * At the transfer's end: a fault here, or a few turns later, may come after
   * the point where it can still stop the migration, so its outcome depends on
   * the stage it met (`expectedOutcome`). Every other point has one outcome per fault.
   */
  late?: true;
}

const step = (side: string, name: string): Point => ({
  name: `after ${side} ${name}`,
  match: (t) => t.kind === "step" && t.side === side && t.step === name,
  occurrences: 1,
});
const phase = (side: string, p: Phase): Point => ({
  name: `${side} notification ${Phase[p]}`,
  match: (t) => t.kind === "notification" && t.side === side && t.phase === p,
  occurrences: 1,
  ...(LATE_PHASES.has(p) ? { late: true as const } : {}),
});
const transfer = (name: string, occurrences: number, match: (e: TransferEvent) => boolean, late?: "late"): Point => ({
  name: `transfer: ${name}`,
  match: (t) => t.kind === "transfer" && match(t.event),
  occurrences,
  ...(late === undefined ? {} : { late: true as const }),
});

const MEMORY = 8 * 1024 * 1024; // 2,048 pages: 8 progress events in the first pass (Pages frames of 1 MiB)
const LATE_PHASES = new Set([Phase.BLACKOUT_EXITED, Phase.DONE]);
const PHASES = [
  Phase.SETUP_DONE,
  Phase.TRANSFER_IN_PROGRESS,
  Phase.BLACKOUT_STARTED,
  Phase.OFFLINE_DONE,
  Phase.BLACKOUT_EXITED,
  Phase.DONE,
];

/** Every point of the workflow up to the success path's FinalizeSandbox (after it, there is nothing to roll back). */
const POINTS: Point[] = [
  { name: "before the migration starts", match: () => false, occurrences: 0 },
  step("source", "PrepareAndExportSandbox"),
  step("destination", "ImportSandbox"),
  step("destination", "PrepareSandbox"),
  step("source", "CreateDuplicateSocket"),
  step("destination", "CreateDuplicateSocket"),
  step("source", "TransferSandbox"),
  step("destination", "TransferSandbox"),
  ...["source", "destination"].flatMap((side) => PHASES.map((p) => phase(side, p))),
  transfer("memory connection made", 1, (e) => e.type === "connected"),
  transfer("first pass starts", 1, (e) => e.type === "pass" && e.pass === 1 && e.side === "source"),
  transfer("first pass sending", 6, (e) => e.type === "progress" && e.pass === 1 && e.side === "source"),
  transfer("first pass received", 6, (e) => e.type === "progress" && e.pass === 1 && e.side === "destination"),
  transfer("first pass ends", 1, (e) => e.type === "pass-end" && e.pass === 1),
  transfer("blackout pass starts", 1, (e) => e.type === "pass" && e.blackout),
  transfer("destination verified", 1, (e) => e.type === "done" && e.side === "destination", "late"),
  transfer("source done", 1, (e) => e.type === "done" && e.side === "source", "late"),
];

/**
 * Unix sockets forwarded from `front` to `back`, until dropped: then every
 * connection, open or new, is destroyed. `destinationEnded` says whether the
 * back side (the destination, which ends its stream after its last frame) has
 * ended a connection: all it sent has been passed on.
 */
async function memoryProxy(
  front: string,
  back: string,
): Promise<{ drop(): void; close(): Promise<void>; destinationEnded(): boolean }> {
  const sockets = new Set<Socket>();
  let dropped = false;
  let ended = false;
  const track = (s: Socket) => {
    sockets.add(s);
    s.on("error", () => {});
    s.on("close", () => sockets.delete(s));
  };
  const server: NetServer = netServer((inbound) => {
    track(inbound);
    if (dropped) return void inbound.destroy();
    const outbound = netConnect({ path: back });
    track(outbound);
    inbound.pipe(outbound).pipe(inbound);
    outbound.on("end", () => (ended = true));
    inbound.on("close", () => outbound.destroy());
    outbound.on("close", () => inbound.destroy());
  });
  await new Promise<void>((resolve) => server.listen({ path: front }, resolve));
  return {
    drop() {
      dropped = true;
      for (const s of sockets) s.destroy();
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    destinationEnded: () => ended,
  };
}

async function shim(dir: string, name: string, sandbox: boolean) {
  const backend = createSimulatedBackend(
    sandbox ? { sandbox: { sandboxId: "sb", memoryBytes: MEMORY, dirtyPagesPerSecond: 0 } } : {},
  );
  const { server, service } = createMigrationServer({ backend });
  const address = await server.listen(`unix:${join(dir, `${name}.sock`)}`);
  return { backend, server, service, address };
}

/** How one faulted migration ended: stopped by the cancel, rolled back after a failure, or succeeded anyway. */
type Outcome = "cancelled" | "rolled-back" | "completed";

/** Where the workflow stood when the fault fired. */
interface Stage {
  /** The orchestrator had received DONE from both sides: it no longer checks the signal. */
  bothDone: boolean;
  /** The destination's last frame (its verification Result) had passed the memory proxy: the memory socket is no longer needed. */
  resultRelayed: boolean;
  /** The destination ran FinalizeSandbox RESUME: the migration has succeeded. */
  destinationRunning: boolean;
}

/** The outcome a fault must have, given where the workflow stood when it fired. */
function expectedOutcome(fault: FaultKind, at: Stage): Outcome {
  if (fault === "cancel") return at.bothDone ? "completed" : "cancelled";
  if (fault === "drop-memory-socket") return at.resultRelayed ? "completed" : "rolled-back";
  return at.destinationRunning ? "completed" : "rolled-back";
}

/** Migrates once with `fault` at `point` (its `occurrence`-th trigger, `turns` event-loop turns later) and checks the aftermath. */
async function faultedMigration(point: Point, fault: FaultKind, occurrence: number, turns: number): Promise<Outcome> {
  const base = resourceCounts();
  const timers = trackTimers();
  const dir = mkdtempSync(join(tmpdir(), "ttrpc-es-sweep-"));
  const memoryListen = join(dir, "memory-dst.sock");
  const memoryConnect = join(dir, "memory-src.sock");
  const src = await shim(dir, "src", true);
  const dst = await shim(dir, "dst", false);
  const proxy = await memoryProxy(memoryConnect, memoryListen);
  // Shuts the shims down: after it, whatever the migration left running shows.
  const shutDown = async () => {
    await proxy.close();
    await Promise.all([src.service.close(), dst.service.close()]);
    await Promise.all([src.server.close(), dst.server.close()]);
    src.backend.vm?.stop();
    dst.backend.vm?.stop();
  };
  try {
    const digest = src.backend.vm!.memory.digest();
    const cancel = new AbortController();
    let fired = false;
    let killed = false;
    const doneSides = new Set<string>();
    let expected: Outcome | undefined;
    const inject = () => {
      fired = true;
      expected = expectedOutcome(fault, {
        bothDone: doneSides.size === 2,
        resultRelayed: proxy.destinationEnded(),
        destinationRunning: dst.backend.vm?.status === "running",
      });
      if (fault === "kill-destination") {
        killed = true;
        dst.backend.crash();
        void dst.server.close();
      } else if (fault === "drop-memory-socket") proxy.drop();
      else cancel.abort(new Error(`fault sweep: cancelled ${point.name}`));
    };
    let seen = 0;
    const trigger = (t: Trigger) => {
      if (fired || !point.match(t) || ++seen !== occurrence) return;
      if (turns === 0) inject();
      else void afterTurns(turns).then(inject);
    };
    if (point.occurrences === 0) inject();
    src.backend.observe((event) => trigger({ kind: "transfer", event }));
    dst.backend.observe((event) => trigger({ kind: "transfer", event }));

    const sessionId = "5e1a2b3c-0000-4000-8000-00000000f417";
    const token = new Uint8Array(randomBytes(16));
    const endpoint = (role: "listen" | "connect", address: string) =>
      encodeEndpointDescriptor({ transport: "unix", address, role, token, sessionNumber: sessionNumber(sessionId) });
    const result: MigrationResult = await migrate({
      source: src.address,
      destination: dst.address,
      sessionId,
      initOptions: { memoryTransport: MemoryTransport.TCP },
      protocolInfo: { source: endpoint("connect", memoryConnect), destination: endpoint("listen", memoryListen) },
      signal: cancel.signal,
      callTimeoutMs: 10_000,
      timeoutMs: 20_000,
      onEvent: (e: MigrationEvent) => {
        if (e.type === "step" && e.error === undefined) trigger({ kind: "step", side: e.side, step: e.step });
        else if (e.type === "notification") {
          // The orchestrator tells of a DONE before it acts on it: the fault comes first.
          trigger({ kind: "notification", side: e.side, phase: e.phase });
          if (e.phase === Phase.DONE) doneSides.add(e.side);
        }
      },
    });
    await afterTurns(turns); // a late fault fires before the checks, not during them
    expect(fired, "the fault fired").toBe(true);
    const outcome: Outcome = result.ok
      ? "completed"
      : result.error?.startsWith("aborted: ")
        ? "cancelled"
        : "rolled-back";
    expect(outcome, `${fault} ${point.name}: ${result.error ?? "ok"}`).toBe(expected);

    if (result.ok) {
      // The fault came too late to stop the migration: the destination runs
      // the source's memory (or ran it: a destination killed after its RESUME
      // died after the migration had succeeded).
      expect(src.backend.vm).toBeUndefined();
      expect(dst.backend.vm?.memory.digest()).toBe(digest);
      if (!killed) expect(dst.backend.vm?.status).toBe("running");
    } else {
      expect(src.backend.vm?.status, result.error).toBe("running");
      expect(src.backend.vm?.memory.digest()).toBe(digest);
      expect(src.backend.vm?.workload.throttlePercent).toBe(100);
      expect(result.recovered, `abort path: ${result.abortErrors.join("; ")}`).not.toBe(false);
      if (!killed) expect(dst.backend.vm).toBeUndefined();
      if (outcome === "cancelled") expect(result.error).toBe(`aborted: fault sweep: cancelled ${point.name}`);
    }
    expect(src.service.session.state).toBe("Idle");
    if (!killed) expect(dst.service.session.state).toBe("Idle");
    expect(existsSync(memoryListen), "the memory listener's socket file").toBe(false);

    await shutDown();
    await expectResourcesSettled(base, 3000);
    const start = performance.now();
    while (timers.running().length > 0) {
      if (performance.now() - start > 3000) throw new Error(`timers left:\n  ${timers.running().join("\n  ")}`);
      await afterTurns(1);
    }
    return outcome;
  } catch (e) {
    await shutDown().catch(() => {});
    throw e;
  } finally {
    timers.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const afterTurns = async (n: number) => {
  for (let i = 0; i < n; i++) await new Promise<void>((resolve) => setImmediate(resolve));
};

const outcomeCounts = (): Record<Outcome, number> => ({ cancelled: 0, "rolled-back": 0, completed: 0 });

/** The seed's draw for one (point, fault): which matching trigger, and how many turns after it. */
function draw(rand: Prng, point: Point): { occurrence: number; turns: number } {
  return { occurrence: point.occurrences === 0 ? 0 : rand.int(1, point.occurrences), turns: rand.pick([0, 0, 1, 3]) };
}

describe("migration fault sweep", () => {
  test("every listed point is reached by a migration without faults", async () => {
    const seen = new Map<string, number>();
    const base = resourceCounts();
    const dir = mkdtempSync(join(tmpdir(), "ttrpc-es-sweep-"));
    try {
      const src = await shim(dir, "src", true);
      const dst = await shim(dir, "dst", false);
      const count = (t: Trigger) => {
        for (const p of POINTS) if (p.match(t)) seen.set(p.name, (seen.get(p.name) ?? 0) + 1);
      };
      src.backend.observe((event) => count({ kind: "transfer", event }));
      dst.backend.observe((event) => count({ kind: "transfer", event }));
      const result = await migrate({
        source: src.address,
        destination: dst.address,
        transferAddress: join(dir, "memory.sock"),
        initOptions: { memoryTransport: MemoryTransport.TCP },
        onEvent: (e) => {
          if (e.type === "step") count({ kind: "step", side: e.side, step: e.step });
          else if (e.type === "notification") count({ kind: "notification", side: e.side, phase: e.phase });
        },
      });
      expect(result.ok).toBe(true);
      await Promise.all([src.server.close(), dst.server.close()]);
      dst.backend.vm?.stop();
      await expectResourcesSettled(base);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    for (const p of POINTS) expect(seen.get(p.name) ?? 0, p.name).toBeGreaterThanOrEqual(p.occurrences);
  });

  // The whole grid: every point with every fault, seed 1 choosing when.
  const grid = prng(1);
  const cases = POINTS.flatMap((point) => FAULTS.map((fault) => ({ point, fault, ...draw(grid, point) })));
  // Draws that found bugs in longer sweeps, kept whatever the grid's seed draws.
  const byName = (name: string) => POINTS.find((p) => p.name === name)!;
  cases.push({ point: byName("after source TransferSandbox"), fault: "cancel", occurrence: 1, turns: 0 });
  const totals = { early: outcomeCounts(), late: outcomeCounts() };
  test.each(cases)("$fault $point.name (occurrence $occurrence, $turns turns later)", async (c) => {
    const outcome = await faultedMigration(c.point, c.fault, c.occurrence, c.turns);
    if (c.point.late === undefined) expect(outcome).toBe(c.fault === "cancel" ? "cancelled" : "rolled-back");
    totals[c.point.late === undefined ? "early" : "late"][outcome]++;
  });
  // Before the transfer's end every cancel stops the migration and every
  // destination death or memory drop rolls it back: 22 points, and the kept
  // draw. At the end (6 points, 18 faults) how each ends depends on the
  // instant the fault met, checked case by case above.
  test("the grid's totals per outcome", () => {
    expect(totals.early).toEqual({ cancelled: 23, "rolled-back": 44, completed: 0 });
    expect(totals.late.cancelled + totals.late["rolled-back"] + totals.late.completed).toBe(18);
  });

  const count = Number(process.env.FAULT_SWEEP_COUNT ?? 0);
  // Defined only when asked for, so that npm test counts no skipped test.
  if (count > 0)
    test(
      `a longer sweep: FAULT_SWEEP_COUNT random faults (seed FAULT_SWEEP_SEED)`,
      async () => {
        const seed = Number(process.env.FAULT_SWEEP_SEED ?? 1);
        const rand = prng(seed, 0x5eed);
        const outcomes = outcomeCounts();
        for (let i = 0; i < count; i++) {
          const point = rand.pick(POINTS);
          const fault = rand.pick(FAULTS);
          const { occurrence, turns } = draw(rand, point);
          const log = process.env.FAULT_SWEEP_LOG;
          if (log !== undefined)
            appendFileSync(log, `${i + 1} start ${fault} ${point.name} (${occurrence}, ${turns})\n`);
          try {
            const t0 = performance.now();
            outcomes[await faultedMigration(point, fault, occurrence, turns)]++;
            // Progress, for a sweep too long to watch in the test's output.
            if (process.env.FAULT_SWEEP_LOG !== undefined) {
              const ms = (performance.now() - t0).toFixed(0);
              appendFileSync(
                process.env.FAULT_SWEEP_LOG,
                `${i + 1} ${fault} ${point.name} (${occurrence}, ${turns}) ${ms} ms\n`,
              );
            }
          } catch (e) {
            throw new Error(
              `fault ${i + 1} of seed ${seed}: ${fault} ${point.name} (${occurrence}, ${turns}): ${String(e)}`,
            );
          }
        }
        console.log(
          `fault sweep, seed ${seed}: ${count} faults injected, ${count} survived (${outcomes.cancelled} cancelled, ${outcomes["rolled-back"]} rolled back, ${outcomes.completed} too late to stop the migration)`,
        );
      },
      24 * 60 * 60 * 1000,
    );
});

checkLeaksAfterAll();
