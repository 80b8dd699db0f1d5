// A stream's receive queue on its own (the calls tests reach it through a
// connection): the byte and count limits, the grace period on a fake clock,
// end, fail and return.
import { afterEach, describe, expect, it, vi } from "vitest";
import { MessageQueue, type QueueLimits } from "../../src/message-queue.js";
import { fakeTimeouts } from "../common.js";

class Queue extends MessageQueue {
  fulls = 0;
  returns = 0;
  protected override full(): void {
    this.fulls++;
  }
  protected override returned(): void {
    this.returns++;
  }
}

const LIMITS: QueueLimits = { bufferSize: 2, maxBytes: 100, graceMs: 50 };
const bytes = (n: number) => new Uint8Array(n);

afterEach(() => {
  vi.useRealTimers();
});

describe("MessageQueue", () => {
  it("hands messages on in order, to a waiting consumer at once", async () => {
    const q = new Queue(LIMITS);
    const waiting = q.next();
    q.push(Uint8Array.of(1));
    q.push(Uint8Array.of(2));
    expect(q.length).toBe(1);
    expect(await waiting).toEqual({ value: Uint8Array.of(1), done: false });
    expect(await q.next()).toEqual({ value: Uint8Array.of(2), done: false });
    expect(q.length).toBe(0);
  });

  it("refuses a second next() while one waits", async () => {
    const q = new Queue(LIMITS);
    const first = q.next();
    await expect(q.next()).rejects.toThrow("concurrent next() on a stream");
    q.end();
    await expect(first).resolves.toEqual({ value: undefined, done: true });
  });

  it("fails at once past maxBytes unread, not at it", () => {
    const q = new Queue(LIMITS);
    q.push(bytes(60));
    q.push(bytes(40));
    expect(q.fulls).toBe(0);
    q.push(bytes(1));
    expect(q.fulls).toBe(1);
  });

  it("counts only the bytes still unread", async () => {
    const q = new Queue(LIMITS);
    for (let i = 0; i < 5; i++) {
      q.push(bytes(60));
      await q.next();
    }
    expect(q.fulls).toBe(0);
  });

  it("more than bufferSize unread fails only once the grace period passes, with one timer", () => {
    fakeTimeouts();
    const q = new Queue(LIMITS);
    q.push(bytes(1));
    q.push(bytes(1));
    expect(vi.getTimerCount()).toBe(0);
    q.push(bytes(1));
    q.push(bytes(1));
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(49);
    expect(q.fulls).toBe(0);
    vi.advanceTimersByTime(1);
    expect(q.fulls).toBe(1);
  });

  it("a consumer that catches up within the grace period is not failed", async () => {
    fakeTimeouts();
    const q = new Queue(LIMITS);
    for (let i = 0; i < 3; i++) q.push(bytes(1));
    await q.next();
    vi.advanceTimersByTime(50);
    expect(q.fulls).toBe(0);
  });

  it("end: what is queued, then done; once ended, pushes and a second end are ignored", async () => {
    const q = new Queue(LIMITS);
    q.push(Uint8Array.of(1));
    q.end();
    q.push(Uint8Array.of(2));
    q.end(new Error("late"));
    expect(await q.next()).toEqual({ value: Uint8Array.of(1), done: false });
    expect(await q.next()).toEqual({ value: undefined, done: true });
  });

  it("fail: drops what is queued and reports the error once, then done", async () => {
    fakeTimeouts();
    const q = new Queue(LIMITS);
    for (let i = 0; i < 3; i++) q.push(bytes(1));
    const boom = new Error("boom");
    q.fail(boom);
    expect(vi.getTimerCount()).toBe(0);
    await expect(q.next()).rejects.toBe(boom);
    expect(await q.next()).toEqual({ value: undefined, done: true });
  });

  it("return: drops what is queued, stops the grace timer, tells the stream once", async () => {
    fakeTimeouts();
    const q = new Queue(LIMITS);
    for (let i = 0; i < 3; i++) q.push(bytes(1));
    expect(await q.return()).toEqual({ value: undefined, done: true });
    expect(vi.getTimerCount()).toBe(0);
    expect(q.length).toBe(0);
    expect(await q.next()).toEqual({ value: undefined, done: true });
    await q.return();
    expect(q.returns).toBe(1);
  });
});
