// The event publisher against a real ttrpc server standing in for
// containerd's events service (containerd itself is in the interop suite):
// what arrives, with which metadata, and Go's retry schedule when sends fail.
// The retry delays are taken by an injected sleep that records them and
// returns at once, so no test waits on a clock.
import { create, fromBinary } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, createServer, TtrpcError } from "ttrpc-es";
import { EventPublisher, MAX_REQUEUE, NAMESPACE_METADATA_KEY, topics } from "ttrpc-es/shim";
import { describe, expect, it, onTestFinished } from "vitest";
import { TaskExitSchema } from "../../gen/containerd/events/task_pb.js";
import { Events } from "../../gen/containerd/services/events/ttrpc/v1/events_pb.js";
import type { Envelope } from "../../gen/containerd/types/event_pb.js";
import { tempDir } from "../common.js";

interface Received {
  envelope: Envelope;
  namespace: string | undefined;
}

/** A containerd events service that fails the first `failures` forwards with UNAVAILABLE. */
async function fakeContainerd(failures: number, path = `${tempDir()}/containerd.sock.ttrpc`) {
  const received: Received[] = [];
  let attempts = 0;
  const server = createServer().register(Events, {
    forward(req, ctx) {
      attempts++;
      if (attempts <= failures) throw new TtrpcError("not now", Code.Unavailable);
      received.push({ envelope: req.envelope!, namespace: ctx.metadata.get(NAMESPACE_METADATA_KEY) });
      return {};
    },
  });
  const address = await server.listen(`unix:${path}`);
  onTestFinished(() => server.close());
  return { address, path, received, attempts: () => attempts, close: () => server.close() };
}

function publisherFor(address: string, delays: number[], dropped: Envelope[] = []) {
  const publisher = new EventPublisher({
    address,
    namespace: "k8s.io",
    sleep: async (ms) => void delays.push(ms),
    onDrop: (e) => void dropped.push(e),
  });
  onTestFinished(() => publisher.close());
  return publisher;
}

const exit = { containerId: "c1", id: "c1", pid: 42, exitStatus: 3 };

describe("EventPublisher", () => {
  it("forwards an Envelope with the namespace, topic, time and event, and the namespace in the metadata", async () => {
    const ctd = await fakeContainerd(0);
    const before = Date.now();
    await publisherFor(ctd.address, []).publish(topics.TASK_EXIT, TaskExitSchema, exit);
    expect(ctd.received).toHaveLength(1);
    const { envelope, namespace } = ctd.received[0]!;
    expect(namespace).toBe("k8s.io");
    expect(envelope).toMatchObject({ namespace: "k8s.io", topic: "/tasks/exit" });
    expect(envelope.event?.typeUrl).toBe("containerd.events.TaskExit");
    expect(fromBinary(TaskExitSchema, envelope.event!.value)).toEqual(create(TaskExitSchema, exit));
    expect(timestampDate(envelope.timestamp!).getTime()).toBeGreaterThanOrEqual(before - 1000);
  });

  it("keeps publish order for first sends", async () => {
    const ctd = await fakeContainerd(0);
    const p = publisherFor(ctd.address, []);
    await Promise.all(["/tasks/create", "/tasks/start", "/tasks/exit"].map((t) => p.publish(t, TaskExitSchema, exit)));
    expect(ctd.received.map((r) => r.envelope.topic)).toEqual(["/tasks/create", "/tasks/start", "/tasks/exit"]);
  });

  it("queues a failed event and retries it after 1 s, then 2 s, as Go's publisher does", async () => {
    const ctd = await fakeContainerd(2);
    const delays: number[] = [];
    const p = publisherFor(ctd.address, delays);
    await expect(p.publish(topics.TASK_EXIT, TaskExitSchema, exit)).rejects.toMatchObject({ code: Code.Unavailable });
    await p.drain();
    expect(delays).toEqual([1000, 2000]);
    expect(ctd.attempts()).toBe(3);
    expect(ctd.received.map((r) => r.envelope.topic)).toEqual(["/tasks/exit"]);
  });

  it("drops an event after five retries (six sends)", async () => {
    const ctd = await fakeContainerd(Number.POSITIVE_INFINITY);
    const delays: number[] = [];
    const dropped: Envelope[] = [];
    const p = publisherFor(ctd.address, delays, dropped);
    await expect(p.publish(topics.TASK_OOM, TaskExitSchema, exit)).rejects.toBeInstanceOf(TtrpcError);
    await p.drain();
    expect(MAX_REQUEUE).toBe(5);
    expect(delays).toEqual([1000, 2000, 3000, 4000, 5000]);
    expect(ctd.attempts()).toBe(6);
    expect(dropped.map((e) => e.topic)).toEqual(["/tasks/oom"]);
    expect(ctd.received).toEqual([]);
  });

  it("redials once, at once, when containerd closed the connection (a restart)", async () => {
    const before = await fakeContainerd(0);
    const delays: number[] = [];
    const p = publisherFor(before.address, delays);
    await p.publish(topics.TASK_START, TaskExitSchema, exit);
    await before.close();
    const after = await fakeContainerd(0, before.path);
    await p.publish(topics.TASK_EXIT, TaskExitSchema, exit);
    expect(before.received.map((r) => r.envelope.topic)).toEqual(["/tasks/start"]);
    expect(after.received.map((r) => r.envelope.topic)).toEqual(["/tasks/exit"]);
    expect(delays).toEqual([]);
  });
});
