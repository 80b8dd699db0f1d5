// The transfers' event queue against a scripted QMP peer on a real unix
// socket (scripted-qmp.ts says why it stands in for QEMU): what it keeps,
// in which order, and how a closed monitor and an aborted signal show.
import { describe, expect, it, onTestFinished } from "vitest";
import type { QmpClient } from "ttrpc-es/migration/qemu";
import { EventQueue, type QueueItem } from "../../../src/migration/qemu/event-queue.js";
import { scriptedQmp } from "./scripted-qmp.js";

const eventName = (item: QueueItem) => (item.kind === "event" ? item.event.event : item.kind);

/** A queue of `names` on `qmp`, closed when the test ends. */
function queueOn(qmp: QmpClient, names: readonly string[], signal = new AbortController().signal): EventQueue {
  const queue = new EventQueue(qmp, names, signal);
  onTestFinished(() => queue.close());
  return queue;
}

/** A scripted peer and the QMP client connected to it. */
async function monitor() {
  const peer = await scriptedQmp();
  return { peer, qmp: await peer.client() };
}

describe("EventQueue", () => {
  it("keeps the subscribed events in arrival order, with their data, and drops the others", async () => {
    const { peer, qmp } = await monitor();
    const queue = queueOn(qmp, ["MIGRATION", "STOP"]);
    peer.event("RESUME");
    peer.event("MIGRATION", { status: "setup" });
    peer.event("MIGRATION_PASS", { pass: 1 });
    peer.event("STOP");
    peer.event("MIGRATION", { status: "active" });
    const items = [await queue.next(), await queue.next(), await queue.next()];
    expect(items.map(eventName)).toEqual(["MIGRATION", "STOP", "MIGRATION"]);
    expect(items[0]!.kind === "event" && items[0]!.event.data).toEqual({ status: "setup" });
    expect(items[2]!.kind === "event" && items[2]!.event.data).toEqual({ status: "active" });
  });

  it("wakes a waiting next() when an event comes", async () => {
    const { peer, qmp } = await monitor();
    const queue = queueOn(qmp, ["STOP"]);
    const waiting = queue.next();
    peer.event("STOP");
    expect(eventName(await waiting)).toBe("STOP");
  });

  it("queues 'closed' after the events that came before the monitor closed", async () => {
    const { peer, qmp } = await monitor();
    const queue = queueOn(qmp, ["STOP"]);
    peer.event("STOP");
    peer.drop();
    expect(eventName(await queue.next())).toBe("STOP");
    expect(await queue.next()).toEqual({ kind: "closed" });
  });

  it("starts with 'closed' on a monitor that is already gone", async () => {
    const { qmp } = await monitor();
    qmp.close();
    await qmp.closed;
    const queue = queueOn(qmp, ["STOP"]);
    expect(qmp.isClosed).toBe(true);
    expect(await queue.next()).toEqual({ kind: "closed" });
  });

  it("queues 'aborted' when the signal aborts, and starts with it when already aborted", async () => {
    const { qmp } = await monitor();
    const ac = new AbortController();
    const queue = queueOn(qmp, ["STOP"], ac.signal);
    const early = queueOn(qmp, ["STOP"], AbortSignal.abort());
    const waiting = queue.next();
    ac.abort();
    expect(await waiting).toEqual({ kind: "aborted" });
    expect(await early.next()).toEqual({ kind: "aborted" });
  });

  it("hears neither events nor the signal once closed", async () => {
    const { peer, qmp } = await monitor();
    const ac = new AbortController();
    const queue = new EventQueue(qmp, ["STOP"], ac.signal);
    queue.close();
    ac.abort();
    peer.event("STOP");
    peer.drop();
    // The monitor closing is still queued, after the STOP that came first would have been.
    expect(await queue.next()).toEqual({ kind: "closed" });
  });
});
