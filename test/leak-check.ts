// Leak checks for tests: open handles (sockets, servers) and pending requests,
// counted with process.getActiveResourcesInfo() against a baseline; and every
// setTimeout/setInterval created while a file runs, tracked one by one (the
// count of timers alone is blurred by vitest's own). "Settled" is found by
// polling the event loop (setImmediate turns), never by sleeping.
//
// Use in a test file:   import { checkLeaksAfterAll } from "../leak-check.js"; checkLeaksAfterAll();
// Or around one test:   const base = resourceCounts(); ...; await expectResourcesSettled(base);
import { afterAll, beforeAll } from "vitest";

/** Resource kinds that a test of this project can leak. */
const WATCHED =
  /^(TCPWrap|PipeWrap|TCPServerWrap|PipeServerWrap|TCPConnectWrap|PipeConnectWrap|ShutdownWrap|WriteWrap|FSReqCallback|FSReqPromise|GetAddrInfoReqWrap)$/;

export type ResourceCounts = Map<string, number>;

/** Counts of the watched active resources, by kind. */
export function resourceCounts(): ResourceCounts {
  const counts: ResourceCounts = new Map();
  for (const kind of process.getActiveResourcesInfo()) {
    if (WATCHED.test(kind)) counts.set(kind, (counts.get(kind) ?? 0) + 1);
  }
  return counts;
}

/** Kinds whose count is above the baseline, as "Kind: base -> now". */
export function resourceGrowth(base: ResourceCounts, now: ResourceCounts = resourceCounts()): string[] {
  const out: string[] = [];
  for (const [kind, n] of now) {
    const b = base.get(kind) ?? 0;
    if (n > b) out.push(`${kind}: ${b} -> ${n}`);
  }
  return out.sort();
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Resolves once no watched resource kind is above `base`; rejects naming the
 * growth if that has not happened within `withinMs` (default 3000) of event
 * loop turns. The time limit is read from the clock at each turn: no timer is
 * created, so the check does not count itself.
 */
export async function expectResourcesSettled(base: ResourceCounts, withinMs = 3000): Promise<void> {
  const start = performance.now();
  for (;;) {
    // The Immediate of our own polling turn is gone when we look.
    const growth = resourceGrowth(base);
    if (growth.length === 0) return;
    if (performance.now() - start > withinMs) {
      throw new Error(`resources left open after ${withinMs} ms: ${growth.join(", ")}`);
    }
    await turn();
  }
}

type Timer = NodeJS.Timeout & { _destroyed?: boolean };

/**
 * Records every timer made through the global setTimeout/setInterval until
 * `stop()`; `running()` lists those neither fired nor cleared (Node marks
 * both `_destroyed`). The runtime reads the globals at each call, so its
 * timers are seen; vitest keeps its own copies, so its timers are not.
 */
export function trackTimers(): { running(): string[]; stop(): void } {
  const made: { timer: Timer; where: string }[] = [];
  const realTimeout = globalThis.setTimeout;
  const realInterval = globalThis.setInterval;
  const wrap = <F extends typeof setTimeout | typeof setInterval>(real: F, kind: string): F =>
    Object.assign((...args: Parameters<F>) => {
      const timer = (real as (...a: unknown[]) => Timer)(...args);
      const where = new Error().stack?.split("\n").slice(2, 4).join(" <- ").trim() ?? "";
      made.push({ timer, where: `${kind} ${String(args[1] ?? 0)} ms at ${where}` });
      return timer;
    }, real) as F;
  globalThis.setTimeout = wrap(realTimeout, "setTimeout");
  globalThis.setInterval = wrap(realInterval, "setInterval");
  return {
    running: () => made.filter((m) => m.timer._destroyed !== true).map((m) => m.where),
    stop: () => {
      globalThis.setTimeout = realTimeout;
      globalThis.setInterval = realInterval;
    },
  };
}

/**
 * Registers a baseline before the file's tests and a check after them: every
 * socket and server the tests opened must be closed, and every timer made
 * during the file must have fired or been cleared.
 */
export function checkLeaksAfterAll(withinMs = 3000): void {
  let base: ResourceCounts | undefined;
  let timers: ReturnType<typeof trackTimers> | undefined;
  beforeAll(() => {
    base = resourceCounts();
    timers = trackTimers();
  });
  afterAll(async () => {
    try {
      await expectResourcesSettled(base!, withinMs);
      const start = performance.now();
      while (timers!.running().length > 0) {
        if (performance.now() - start > withinMs) {
          throw new Error(`timers left running after ${withinMs} ms:\n  ${timers!.running().join("\n  ")}`);
        }
        await turn();
      }
    } finally {
      timers!.stop();
    }
  });
}
