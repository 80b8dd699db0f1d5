// Leak checks for tests: open handles (sockets, servers), pending requests
// and ref'd timers, counted with process.getActiveResourcesInfo() and
// compared with a baseline. "Settled" is found by polling the event loop
// (setImmediate turns), never by sleeping.
//
// Use in a test file:   import { checkLeaksAfterAll } from "../leak-check.js"; checkLeaksAfterAll();
// Or around one test:   const base = resourceCounts(); ...; await expectResourcesSettled(base);
import { afterAll, beforeAll } from "vitest";

/** Resource kinds that a test of this project can leak. */
const WATCHED = /^(Timeout|Immediate|TCPWrap|PipeWrap|TCPServerWrap|PipeServerWrap|TCPConnectWrap|PipeConnectWrap|ShutdownWrap|WriteWrap|FSReqCallback|FSReqPromise|GetAddrInfoReqWrap)$/;

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

/**
 * Registers a baseline before the file's tests and a check after them: every
 * socket, server and ref'd timer the tests opened must be gone.
 */
export function checkLeaksAfterAll(withinMs = 3000): void {
  let base: ResourceCounts | undefined;
  beforeAll(() => {
    base = resourceCounts();
  });
  afterAll(async () => {
    await expectResourcesSettled(base!, withinMs);
  });
}
