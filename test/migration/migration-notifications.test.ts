// Notifications: shared message ids, replay to a late subscriber, the
// 64-deep per-subscriber buffer that drops for a slow reader, and the end of
// the stream at Cleanup and when the client leaves.
import { getEventListeners } from "node:events";
import { describe, expect, it, vi } from "vitest";
import { Code, TtrpcError } from "ttrpc-es";
import { FinalizeAction, Origin, type Notification } from "ttrpc-es/migration";
import { createNotifier, NOTIFICATION_BUFFER_SIZE } from "../../src/migration/notifier.js";
import { Phase, PhaseState, SESSION, listen, phases, ready, startShim, transferred } from "./shim.js";

const note = (phase: Phase) => ({ origin: Origin.SOURCE, phase, state: PhaseState.SUCCESS }) as Notification;

describe("the notifier", () => {
  it("never lets a slow subscriber block a fast one: the slow one keeps 64 and loses the rest", async () => {
    const n = createNotifier();
    const slow = n.subscribe()[Symbol.asyncIterator]();
    const fast = n.subscribe()[Symbol.asyncIterator]();
    const seen: number[] = [];
    for (let i = 0; i < 200; i++) {
      n.publish(note(Phase.TRANSFER_IN_PROGRESS));
      const r = await fast.next();
      seen.push(r.value!.messageId);
    }
    expect(seen).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(n.dropped).toBe(200 - NOTIFICATION_BUFFER_SIZE);
    n.close();
    const slowSeen: number[] = [];
    for (let r = await slow.next(); !r.done; r = await slow.next()) slowSeen.push(r.value.messageId);
    expect(slowSeen).toEqual(Array.from({ length: NOTIFICATION_BUFFER_SIZE }, (_, i) => i + 1));
  });

  it("replays only the latest notification to a new subscriber, with its original id", async () => {
    const n = createNotifier();
    n.publish(note(Phase.SETUP_DONE));
    n.publish(note(Phase.TRANSFER_IN_PROGRESS));
    const it = n.subscribe()[Symbol.asyncIterator]();
    const first = await it.next();
    expect(first.value!.messageId).toBe(2);
    expect(first.value!.notification!.phase).toBe(Phase.TRANSFER_IN_PROGRESS);
    n.publish(note(Phase.BLACKOUT_STARTED));
    expect((await it.next()).value!.messageId).toBe(3);
  });

  it("ends a subscription at once when its signal aborts, and refuses new ones once closed", async () => {
    const n = createNotifier();
    const ac = new AbortController();
    const it = n.subscribe(ac.signal)[Symbol.asyncIterator]();
    const pending = it.next();
    expect(n.subscriberCount).toBe(1);
    ac.abort();
    expect((await pending).done).toBe(true);
    expect(n.subscriberCount).toBe(0);
    n.close();
    expect(() => n.subscribe()).toThrow();
    expect(n.publish(note(Phase.DONE))).toBeUndefined();
  });

  it("refuses a subscription once closed, saying why", () => {
    const n = createNotifier();
    n.close();
    n.close();
    expect(n.closed).toBe(true);
    expect(() => n.subscribe()).toThrow(new Error("the notifier is closed"));
  });

  it("stops counting a subscriber whose signal aborts before it ever read, and leaves no listener on the signal", () => {
    const n = createNotifier();
    const ac = new AbortController();
    n.subscribe(ac.signal);
    expect(n.subscriberCount).toBe(1);
    expect(getEventListeners(ac.signal, "abort")).toHaveLength(1);
    ac.abort();
    expect(n.subscriberCount).toBe(0);
    expect(getEventListeners(ac.signal, "abort")).toHaveLength(0);
  });

  it("forgets a stream that ended, by close or by its reader leaving, and its abort listener", async () => {
    const n = createNotifier();
    const ac = new AbortController();
    const closing = n.subscribe(ac.signal)[Symbol.asyncIterator]();
    const leaving = n.subscribe(ac.signal);
    n.publish(note(Phase.SETUP_DONE));
    expect(n.subscriberCount).toBe(2);
    // The reader leaves after its first notification: the loop's return() ends the stream.
    for await (const r of leaving) {
      expect(r.messageId).toBe(1);
      break;
    }
    expect(n.subscriberCount).toBe(1);
    expect(getEventListeners(ac.signal, "abort")).toHaveLength(1);
    n.close();
    expect((await closing.next()).value!.messageId).toBe(1);
    expect((await closing.next()).done).toBe(true);
    expect(n.subscriberCount).toBe(0);
    expect(getEventListeners(ac.signal, "abort")).toHaveLength(0);
  });

  it("stamps start_time once and update_time from the clock", () => {
    let t = 1_700_000_000_000.5;
    const n = createNotifier({ now: () => t });
    t += 1500.25;
    const a = n.publish(note(Phase.SETUP_DONE))!;
    t += 1000;
    const b = n.publish(note(Phase.DONE))!;
    expect(a.startTime).toEqual(b.startTime);
    expect([a.startTime!.seconds, a.startTime!.nanos]).toEqual([1_700_000_000n, 500_000]);
    expect([a.updateTime!.seconds, a.updateTime!.nanos]).toEqual([1_700_000_001n, 500_750_000]);
    expect(b.updateTime!.seconds).toBe(1_700_000_002n);
  });
});

describe("Notifications over the wire", () => {
  it("shares one message_id counter between subscribers and replays the latest event to a late one", async () => {
    const src = await startShim({ transfer: "gated" });
    await ready(src, "source");
    const early = await listen(src);
    await src.client.transferSandbox({ sessionId: SESSION });
    await early.until(Phase.TRANSFER_IN_PROGRESS);
    // A subscriber on another connection, late: it first gets the latest event.
    const other = await src.connectAgain();
    const lateItems: number[] = [];
    const late = other.client.notifications({ sessionId: SESSION })[Symbol.asyncIterator]();
    const replay = (await late.next()).value!;
    expect(replay.messageId).toBe(2);
    expect(replay.notification!.phase).toBe(Phase.TRANSFER_IN_PROGRESS);
    expect(replay.startTime).toEqual(early.items[0]!.startTime);
    src.backend.openGate();
    await early.until(Phase.DONE);
    for (let r = await late.next(); !r.done; r = await late.next()) {
      lateItems.push(r.value.messageId);
      if (r.value.notification!.phase === Phase.DONE) break;
    }
    expect(early.items.map((r) => r.messageId)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(lateItems).toEqual([3, 4, 5, 6]);
  });

  it("a reader that does not read does not hold up the transfer or the other reader", async () => {
    const src = await startShim();
    await ready(src, "source");
    // This client reads nothing until the migration is over.
    const idle = await src.connectAgain();
    const stalled = idle.client.notifications({ sessionId: SESSION })[Symbol.asyncIterator]();
    const first = stalled.next();
    await vi.waitFor(() => expect(src.service.session.subscribers).toBe(1), { timeout: 10_000 });
    const active = await listen(src);
    await src.client.transferSandbox({ sessionId: SESSION });
    await active.until(Phase.DONE);
    await src.client.finalizeSandbox({ sessionId: SESSION, action: FinalizeAction.STOP });
    await src.client.cleanup({ sessionId: SESSION });
    await active.done;
    expect(phases(active.items)).toHaveLength(6);
    // What it had queued is still there, in order, and then the stream ends.
    const ids = [(await first).value!.messageId];
    for (let r = await stalled.next(); !r.done; r = await stalled.next()) ids.push(r.value.messageId);
    expect(ids).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it("ends the stream when the client goes away, and the shim stops counting it", async () => {
    const src = await startShim();
    await ready(src, "source");
    const other = await src.connectAgain();
    const ac = new AbortController();
    const events = other.client.notifications({ sessionId: SESSION }, { signal: ac.signal })[Symbol.asyncIterator]();
    const pending = events.next();
    await vi.waitFor(() => expect(src.service.session.subscribers).toBe(1), { timeout: 10_000 });
    ac.abort();
    await expect(pending).rejects.toBeInstanceOf(Error);
    // The connection closing is what the server sees; ttrpc has no cancel frame.
    other.conn.close();
    await vi.waitFor(() => expect(src.service.session.subscribers).toBe(0), { timeout: 10_000 });
    // The session goes on for the others.
    const events2 = await listen(src);
    await src.client.transferSandbox({ sessionId: SESSION });
    await events2.until(Phase.DONE);
  });

  it("ends every stream cleanly at Cleanup, and is refused for the session afterwards", async () => {
    const src = await startShim();
    const a = await transferred(src, "source");
    const b = await listen(src);
    await b.until(Phase.DONE); // the replay
    await src.client.finalizeSandbox({ sessionId: SESSION, action: FinalizeAction.STOP });
    await src.client.cleanup({ sessionId: SESSION });
    await Promise.all([a.done, b.done]);
    expect(b.items.map((r) => r.messageId)).toEqual([6]);
    const after = src.client.notifications({ sessionId: SESSION })[Symbol.asyncIterator]();
    const err = await after.next().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TtrpcError);
    expect((err as TtrpcError).code).toBe(Code.InvalidArgument);
  });
});
