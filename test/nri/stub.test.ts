// The plugin stub against a TypeScript NRI runtime (test-runtime.ts), a
// stand-in for containerd/nri's pkg/adaptation: it can be told to misbehave
// on cue (never answer RegisterPlugin, never Configure, go away and come back
// on the same socket), which the Go runtime cannot, and it runs in the unit
// project without the Debian peers. The paths the Go runtime can produce run
// against it too, in test/interop/nri/go-adaptation.test.ts: a handler error
// failing the runtime's request, UpdateContainers failures, reconnect mode,
// exit mode (run() ends with reason "gone").
import { connect as netConnect, type Socket } from "node:net";
import { once } from "node:events";
import { join } from "node:path";
import { Code, TtrpcError } from "ttrpc-es";
import { createStub, Event, eventMask, type PluginHandlers, type Stub, type StubOptions } from "ttrpc-es/nri";
import { describe, expect, it, onTestFinished } from "vitest";
import { tempDir } from "../common.js";
import { startTestRuntime, type TestRuntimeOptions } from "./test-runtime.js";

async function setup(handlers: PluginHandlers, options: StubOptions = {}, runtimeOptions: TestRuntimeOptions = {}) {
  const socketPath = join(tempDir(), "nri.sock");
  const runtime = await startTestRuntime(socketPath, runtimeOptions);
  const stub = createStub(handlers, { name: "test", idx: "10", socketPath, ...options });
  onTestFinished(async () => {
    await stub.stop();
    await runtime.close();
  });
  return { socketPath, runtime, stub };
}

async function started(handlers: PluginHandlers, options: StubOptions = {}, runtimeOptions: TestRuntimeOptions = {}) {
  const s = await setup(handlers, options, runtimeOptions);
  const registered = s.runtime.nextPlugin();
  const starting = s.stub.start();
  const p = await registered;
  const configured = await p.plugin.configure({ runtimeName: "ts-runtime", runtimeVersion: "0.0" });
  await starting;
  return { ...s, p, configured };
}

async function connectUnix(path: string): Promise<Socket> {
  const socket = netConnect(path);
  await once(socket, "connect");
  return socket;
}

/** A handler's promise that settles only when its signal aborts. */
function aborted(signal: AbortSignal): Promise<undefined> {
  return new Promise((resolve) => signal.addEventListener("abort", () => resolve(undefined)));
}

const pod = { id: "pod-1", name: "pod", namespace: "default" };
const container = { id: "ctr-1", podSandboxId: "pod-1", name: "ctr" };

describe("NRI stub", () => {
  it("registers its name and index and subscribes to exactly the events it handles", async () => {
    const { p, configured, stub } = await started({ createContainer: () => undefined, removeContainer: () => {} });
    expect([p.name, p.idx]).toEqual(["test", "10"]);
    expect(configured.events).toBe(eventMask([Event.CREATE_CONTAINER, Event.REMOVE_CONTAINER]));
    expect(stub.events).toBe(configured.events);
  });

  it("Configure may narrow the subscription, and may not widen it", async () => {
    const narrow = await started({
      createContainer: () => undefined,
      removeContainer: () => {},
      configure: () => eventMask([Event.REMOVE_CONTAINER]),
    });
    expect(narrow.configured.events).toBe(eventMask([Event.REMOVE_CONTAINER]));

    const s = await setup({ removeContainer: () => {}, configure: () => eventMask([Event.CREATE_CONTAINER]) });
    const registered = s.runtime.nextPlugin();
    const starting = expect(s.stub.start()).rejects.toThrow(/without a handler/);
    await expect((await registered).plugin.configure({})).rejects.toMatchObject({
      code: Code.InvalidArgument,
      rawMessage: expect.stringMatching(/without a handler: CREATE_CONTAINER/),
    });
    await starting;
  });

  it("joins Synchronize chunks marked more, answering them with more", async () => {
    const seen: string[][] = [];
    const { p } = await started({
      runPodSandbox: () => {},
      synchronize: (pods, containers) => {
        seen.push([...pods.map((x) => x.id), ...containers.map((x) => x.id)]);
        return [{ containerId: "c2", ignoreFailure: true }];
      },
    });
    const first = await p.plugin.synchronize({ pods: [{ id: "p1" }], containers: [{ id: "c1" }], more: true });
    expect(first.more).toBe(true);
    expect(first.update).toEqual([]);
    expect(seen).toEqual([]);
    const last = await p.plugin.synchronize({ pods: [{ id: "p2" }], containers: [{ id: "c2" }] });
    expect(seen).toEqual([["p1", "p2", "c1", "c2"]]);
    expect(last.update.map((u) => [u.containerId, u.ignoreFailure])).toEqual([["c2", true]]);
  });

  it("CreateContainer returns the handler's adjustment and updates", async () => {
    const { p } = await started({
      createContainer: (_pod, c) => ({
        adjust: { env: [{ key: "FROM_PLUGIN", value: c.name }], annotations: { "ttrpc-es/seen": "yes" } },
        update: [{ containerId: "other", linux: { resources: { cpu: { shares: { value: 512n } } } } }],
      }),
    });
    const r = await p.plugin.createContainer({ pod, container });
    expect(r.adjust?.env).toMatchObject([{ key: "FROM_PLUGIN", value: "ctr" }]);
    expect(r.adjust?.annotations).toEqual({ "ttrpc-es/seen": "yes" });
    expect(r.update[0]?.linux?.resources?.cpu?.shares?.value).toBe(512n);
  });

  it("StateChange (NRI 0.6) and the per-event RPCs reach the same handlers", async () => {
    const calls: string[] = [];
    const { p } = await started({
      runPodSandbox: (x) => void calls.push(`run ${x.id}`),
      startContainer: (x, c) => void calls.push(`start ${x.id}/${c.id}`),
    });
    await p.plugin.stateChange({ event: Event.RUN_POD_SANDBOX, pod });
    await p.plugin.stateChange({ event: Event.START_CONTAINER, pod, container });
    await p.plugin.runPodSandbox({ pod });
    await p.plugin.startContainer({ pod, container });
    // an event the plugin does not handle is answered, not failed
    await p.plugin.stateChange({ event: Event.REMOVE_CONTAINER, pod, container });
    expect(calls).toEqual(["run pod-1", "start pod-1/ctr-1", "run pod-1", "start pod-1/ctr-1"]);
  });

  it("a handler error becomes the status: a TtrpcError keeps its code, anything else is UNKNOWN", async () => {
    const { p } = await started({
      createContainer: () => {
        throw new TtrpcError("no such device", Code.NotFound);
      },
      startContainer: () => {
        throw new Error("boom");
      },
    });
    await expect(p.plugin.createContainer({ pod, container })).rejects.toMatchObject({
      code: Code.NotFound,
      rawMessage: "no such device",
    });
    await expect(p.plugin.startContainer({ pod, container })).rejects.toMatchObject({
      code: Code.Unknown,
      rawMessage: "boom",
    });
  });

  it("a handler that hangs past the request timeout is answered DEADLINE_EXCEEDED and its signal aborts", async () => {
    let aborted: unknown;
    const { p } = await started(
      {
        createContainer: (_p, _c, ctx) =>
          new Promise<undefined>((resolve) =>
            ctx.signal.addEventListener("abort", () => {
              aborted = ctx.signal.reason;
              resolve(undefined);
            }),
          ),
      },
      { requestTimeoutMs: 50 },
    );
    await expect(p.plugin.createContainer({ pod, container })).rejects.toMatchObject({
      code: Code.DeadlineExceeded,
      rawMessage: "nri: handler createContainer did not finish within 50 ms",
    });
    expect(aborted).toBeInstanceOf(TtrpcError);
  });

  it("takes the request timeout Configure sends, unless the plugin set its own", async () => {
    const hang = { createContainer: (_p: unknown, _c: unknown, ctx: { signal: AbortSignal }) => aborted(ctx.signal) };
    for (const [own, expected] of [
      [undefined, 40],
      [60, 60],
    ] as const) {
      const s = await setup(hang as PluginHandlers, own === undefined ? {} : { requestTimeoutMs: own });
      const registered = s.runtime.nextPlugin();
      const starting = s.stub.start();
      const p = await registered;
      await p.plugin.configure({ requestTimeout: 40n });
      await starting;
      await expect(p.plugin.createContainer({ pod, container })).rejects.toMatchObject({
        code: Code.DeadlineExceeded,
        rawMessage: `nri: handler createContainer did not finish within ${expected} ms`,
      });
    }
  });

  it("refuses a second start()", async () => {
    const { stub } = await started({ runPodSandbox: () => {} });
    await expect(stub.start()).rejects.toMatchObject({ code: Code.FailedPrecondition });
  });

  it("reconnect mode dials again after each failed attempt, and stop() ends the waiting", async () => {
    const socketPath = join(tempDir(), "nri.sock");
    const runtime = await startTestRuntime(socketPath);
    let attempts = 0;
    let refuseFrom = Number.POSITIVE_INFINITY;
    let refused!: () => void;
    const refusedTwice = new Promise<void>((resolve) => (refused = resolve));
    const stub = createStub(
      { runPodSandbox: () => {} },
      {
        name: "retry",
        idx: "30",
        env: {},
        onRuntimeGone: "reconnect",
        reconnectDelayMs: 5,
        connect: () => {
          attempts++;
          if (attempts >= refuseFrom) {
            if (attempts === refuseFrom + 2) refused();
            throw new Error("runtime not back yet");
          }
          return connectUnix(socketPath);
        },
      },
    );
    onTestFinished(async () => {
      await stub.stop();
      await runtime.close();
    });
    const first = runtime.nextPlugin();
    const running = stub.run();
    const p = await first;
    await p.plugin.configure({});
    // The runtime goes; the next attempts fail and are retried until stop().
    refuseFrom = attempts + 1;
    p.close();
    await refusedTwice;
    await stub.stop();
    await running;
    expect(attempts).toBeGreaterThanOrEqual(refuseFrom + 2);
  });

  it("a runtime that never answers RegisterPlugin fails start() with DEADLINE_EXCEEDED", async () => {
    const { stub } = await setup(
      { runPodSandbox: () => {} },
      { registrationTimeoutMs: 100 },
      { neverAnswerRegistration: true },
    );
    await expect(stub.start()).rejects.toMatchObject({
      code: Code.DeadlineExceeded,
      rawMessage: "nri: the runtime did not answer RegisterPlugin within 100 ms",
    });
  });

  it("a runtime that registers but never configures fails start() too", async () => {
    const { stub, runtime } = await setup({ runPodSandbox: () => {} }, { registrationTimeoutMs: 100 });
    const registered = runtime.nextPlugin();
    await expect(stub.start()).rejects.toMatchObject({
      code: Code.DeadlineExceeded,
      rawMessage: "nri: the runtime did not send Configure within 100 ms",
    });
    await registered;
  });

  it("updateContainers reaches the runtime and returns what failed", async () => {
    const { p, stub } = await started(
      { runPodSandbox: () => {} },
      {},
      { failUpdates: (req) => req.update.filter((u) => u.containerId === "bad") },
    );
    const failed = await stub.updateContainers(
      [
        { containerId: "good" },
        { containerId: "bad", linux: { resources: { memory: { limit: { value: 1n << 30n } } } } },
      ],
      { evict: [{ containerId: "gone", reason: "test" }] },
    );
    expect(failed.map((u) => u.containerId)).toEqual(["bad"]);
    expect(p.updates[0]?.update.map((u) => u.containerId)).toEqual(["good", "bad"]);
    expect(p.updates[0]?.evict[0]?.reason).toBe("test");
  });

  it("run() ends when the runtime goes away (exit mode), after a Shutdown call reaches the handler", async () => {
    let shutdown = 0;
    const reasons: string[] = [];
    const { p, stub } = await started(
      { runPodSandbox: () => {}, shutdown: () => void shutdown++ },
      { onDisconnect: (r) => void reasons.push(r) },
    );
    const running = stub.run();
    await p.plugin.shutdown({});
    p.close();
    await running;
    expect(shutdown).toBe(1);
    expect(reasons).toEqual(["shutdown"]);
    await expect(stub.updateContainers([])).rejects.toMatchObject({ code: Code.Unavailable });
  });

  it("reconnect mode registers again when the runtime comes back on the same socket", async () => {
    const socketPath = join(tempDir(), "nri.sock");
    let runtime = await startTestRuntime(socketPath);
    const reasons: string[] = [];
    const stub: Stub = createStub(
      { runPodSandbox: () => {} },
      {
        name: "again",
        idx: "20",
        socketPath,
        onRuntimeGone: "reconnect",
        reconnectDelayMs: 20,
        onDisconnect: (r) => void reasons.push(r),
      },
    );
    onTestFinished(async () => {
      await stub.stop();
      await runtime.close();
    });
    const first = runtime.nextPlugin();
    const running = stub.run();
    await (await first).plugin.configure({});
    await runtime.close();
    runtime = await startTestRuntime(socketPath);
    const second = await runtime.nextPlugin();
    expect([second.name, second.idx]).toEqual(["again", "20"]);
    await second.plugin.configure({});
    expect(reasons).toEqual(["gone"]);
    await stub.stop();
    await running;
  });

  it("refuses a plugin with no event handler or a bad index", () => {
    expect(() => createStub({ configure: () => 0 }, { name: "x", idx: "01" })).toThrow(/implements no event handler/);
    expect(() => createStub({ runPodSandbox: () => {} }, { name: "x", idx: "1" })).toThrow(/two digits/);
    expect(() =>
      createStub({ runPodSandbox: () => {} }, { env: { NRI_PLUGIN_NAME: "n", NRI_PLUGIN_IDX: "07" } }),
    ).not.toThrow();
  });
});
