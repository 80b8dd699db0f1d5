// The simulated guest (guest-workload.ts): it owes page writes for the time
// that passed at its rate (scaled by the throttle) and writes them when
// advanced, by its idle timer, or when paused. The clock and the timer are
// faked: time moves only when the test moves it.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { GuestWorkload } from "../../src/migration/simulated/guest-workload.js";
import { MemoryImage } from "../../src/migration/simulated/memory-image.js";

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setInterval", "clearInterval", "Date"], now: 1_000_000 });
});
/** The guests made by guest(): paused after each test, before the real clock is back. */
const guests: GuestWorkload[] = [];
afterEach(() => {
  for (const g of guests.splice(0)) g.pause();
  vi.useRealTimers();
});

/** A guest on a small zero image, its clock the faked Date; paused when the test ends. */
function guest(dirtyPagesPerSecond: number, sizeBytes = 1024 * 1024, pageSize = 4096) {
  const memory = new MemoryImage({ sizeBytes, pageSize });
  const workload = new GuestWorkload(memory, { dirtyPagesPerSecond, now: () => Date.now() });
  guests.push(workload);
  return { memory, workload };
}

/** Moves the clock without running the idle timer (its tick is longer than any step here). */
function elapse(ms: number): void {
  vi.setSystemTime(Date.now() + ms);
}

describe("guest workload", () => {
  it("writes nothing before it is started", () => {
    const { memory, workload } = guest(1000);
    expect(workload.running).toBe(false);
    elapse(500);
    expect(workload.advance()).toBe(0);
    expect(workload.writes).toBe(0);
    expect(memory.dirtyCount).toBe(0);
  });

  it("writes the pages owed for the time since the last advance, carrying fractions", () => {
    const { memory, workload } = guest(1000);
    workload.start(60_000);
    expect(workload.running).toBe(true);
    elapse(10);
    expect(workload.advance()).toBe(10);
    elapse(10);
    expect(workload.advance()).toBe(10);
    expect(workload.writes).toBe(20);
    // 1.5 pages owed: one written, half a page carried to the next advance.
    workload.dirtyPagesPerSecond = 500;
    elapse(3);
    expect(workload.advance()).toBe(1);
    elapse(3);
    expect(workload.advance()).toBe(2);
    expect(workload.writes).toBe(23);
    expect(memory.dirtyCount).toBeGreaterThan(0);
    expect(memory.dirtyCount).toBeLessThanOrEqual(23);
  });

  it("a clock that steps back owes nothing", () => {
    const { workload } = guest(1000);
    workload.start(60_000);
    elapse(-50);
    expect(workload.advance()).toBe(0);
    expect(workload.writes).toBe(0);
  });

  it("throttles to a percentage clamped to 0 … 100, writing what it owed at the old speed first", () => {
    const { workload } = guest(1000);
    workload.start(60_000);
    elapse(10);
    workload.throttle(50);
    expect(workload.writes).toBe(10);
    expect(workload.throttlePercent).toBe(50);
    elapse(10);
    expect(workload.advance()).toBe(5);
    workload.throttle(-5);
    expect(workload.throttlePercent).toBe(0);
    elapse(10);
    expect(workload.advance()).toBe(0);
    workload.throttle(150);
    expect(workload.throttlePercent).toBe(100);
    elapse(10);
    expect(workload.advance()).toBe(10);
  });

  it("its idle timer writes what is owed, except while held", () => {
    const { workload } = guest(1000);
    workload.start(10);
    vi.advanceTimersByTime(10);
    expect(workload.writes).toBe(10);
    workload.hold(true);
    vi.advanceTimersByTime(20);
    expect(workload.writes).toBe(10);
    workload.hold(false);
    // The next tick writes the pages owed while held too.
    vi.advanceTimersByTime(10);
    expect(workload.writes).toBe(40);
  });

  it("pausing writes what is owed, then stops the writes and the timer", () => {
    const { workload } = guest(1000);
    workload.start(10);
    elapse(5);
    workload.pause();
    expect(workload.writes).toBe(5);
    expect(workload.running).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(100);
    expect(workload.advance()).toBe(0);
    expect(workload.writes).toBe(5);
  });

  it("bumps a counter past the page's index stamp, at an offset that moves with each write", () => {
    const { memory, workload } = guest(1000);
    workload.start(60_000);
    elapse(1);
    expect(workload.advance()).toBe(1);
    const [page] = memory.takeDirty();
    const bytes = memory.page(page!);
    expect(bytes.readUInt32LE(0)).toBe(0);
    // The first write's counter is at offset 4: 0 + 1.
    expect(bytes.readUInt32LE(4)).toBe(1);
    expect(bytes.subarray(8).every((x) => x === 0)).toBe(true);
    expect(memory.knownZero(page!, 1)).toBe(false);
  });

  it("writes each page once when four times the image is owed, and one page a write below that", () => {
    // 16 pages: 64 writes owed or more make every page dirty anyway.
    const { memory, workload } = guest(64_000, 16 * 512, 512);
    workload.start(60_000);
    elapse(1);
    expect(workload.advance()).toBe(64);
    expect(workload.writes).toBe(16);
    expect(Array.from(memory.takeDirty())).toEqual(Array.from({ length: 16 }, (_, i) => i));
    workload.dirtyPagesPerSecond = 63_000;
    elapse(1);
    expect(workload.advance()).toBe(63);
    expect(workload.writes).toBe(16 + 63);
  });

  it("continues the same page sequence from its state on another image", () => {
    const a = guest(1000);
    a.workload.start(60_000);
    elapse(10);
    a.workload.pause();
    a.memory.takeDirty();
    const state = a.workload.state();
    expect(state.writes).toBe(10);

    const b = new MemoryImage({ sizeBytes: 1024 * 1024 });
    const resumed = new GuestWorkload(b, { dirtyPagesPerSecond: 1000, state, now: () => Date.now() });
    expect(resumed.writes).toBe(10);
    a.workload.start(60_000);
    resumed.start(60_000);
    elapse(5);
    a.workload.pause();
    resumed.pause();
    expect(Array.from(b.takeDirty())).toEqual(Array.from(a.memory.takeDirty()));
    expect(resumed.state()).toEqual(a.workload.state());
  });
});
