// The Plugin service a stub serves, driven directly: each NRI request reaches
// the right handler with the right arguments, under the host's `call`, and
// the reply is what the handler returned (or the empty reply). The host here
// records what the stub would do (timeouts, closing after a failed
// Configure); the stub's own tests and the Go runtime's interop run the same
// service over real connections.
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  ConfigureRequestSchema,
  ContainerSchema,
  CreateContainerRequestSchema,
  EmptySchema,
  Event,
  LinuxResourcesSchema,
  PodSandboxSchema,
  StateChangeEventSchema,
  StopContainerRequestSchema,
  SynchronizeRequestSchema,
  UpdateContainerRequestSchema,
  UpdatePodSandboxRequestSchema,
  ValidateContainerAdjustmentRequestSchema,
  type Container,
  type PodSandbox,
} from "../../gen/nri/pkg/api/v1alpha1/api_pb.js";
import type { PluginServer } from "../../gen/nri/pkg/api/v1alpha1/api_ttrpc.js";
import { Code } from "../../src/code.js";
import { eventBit, eventMask, NRI_0_6_EVENTS } from "../../src/nri/event-mask.js";
import type { NriContext, PluginHandlers } from "../../src/nri/plugin-handlers.js";
import { pluginService, type PluginServiceHost } from "../../src/nri/plugin-service.js";
import { TtrpcError } from "../../src/ttrpc-error.js";
import type { HandlerContext } from "../../src/service-impl.js";

/** A host that runs each handler at once and records what the stub would have done. */
class RecordingHost implements PluginServiceHost {
  readonly calls: { what: string; signal: AbortSignal }[] = [];
  readonly timeouts: number[] = [];
  readonly configuredWith: (TtrpcError | undefined)[] = [];
  shutdowns = 0;
  readonly ctx: NriContext = { signal: new AbortController().signal };
  constructor(readonly events: number) {}
  call<T>(what: string, signal: AbortSignal, fn: (ctx: NriContext) => T | Promise<T>): Promise<T> {
    this.calls.push({ what, signal });
    return Promise.resolve(fn(this.ctx));
  }
  useRequestTimeout(ms: number): void {
    this.timeouts.push(ms);
  }
  configured(error?: TtrpcError): void {
    this.configuredWith.push(error);
  }
  shuttingDown(): void {
    this.shutdowns++;
  }
}

const signal = new AbortController().signal;
const context = { signal } as HandlerContext;
const podA = create(PodSandboxSchema, { id: "pod-a", name: "a" });
const ctrA = create(ContainerSchema, { id: "ctr-a", podSandboxId: "pod-a" });
const cpu = create(LinuxResourcesSchema, { cpu: { shares: { value: 512n } } });
const memory = create(LinuxResourcesSchema, { memory: { limit: { value: 1n << 30n } } });

function serve(h: PluginHandlers, events = 0): { service: Required<PluginServer>; host: RecordingHost } {
  const host = new RecordingHost(events);
  return { service: pluginService(h, host) as Required<PluginServer>, host };
}

/** Handlers that record their arguments by name. */
function recorder(): { h: PluginHandlers; seen: { name: string; args: unknown[] }[] } {
  const seen: { name: string; args: unknown[] }[] = [];
  const rec =
    (name: string) =>
    (...args: unknown[]) => {
      seen.push({ name, args });
    };
  const h: PluginHandlers = {};
  for (const name of [
    "runPodSandbox",
    "postUpdatePodSandbox",
    "stopPodSandbox",
    "removePodSandbox",
    "postCreateContainer",
    "startContainer",
    "postStartContainer",
    "postUpdateContainer",
    "removeContainer",
  ] as const) {
    (h as Record<string, unknown>)[name] = rec(name);
  }
  return { h, seen };
}

describe("the Plugin service's event requests", () => {
  it("hand pod events (pod, ctx) and container events (pod, container, ctx) to their handlers", async () => {
    const { h, seen } = recorder();
    const { service, host } = serve(h);
    const pod = { pod: podA };
    const both = { pod: podA, container: ctrA };
    await expect(service.runPodSandbox(pod as never, context)).resolves.toEqual({});
    await service.postUpdatePodSandbox(pod as never, context);
    await service.stopPodSandbox(pod as never, context);
    await service.removePodSandbox(pod as never, context);
    await service.postCreateContainer(both as never, context);
    await service.startContainer(both as never, context);
    await service.postStartContainer(both as never, context);
    await service.postUpdateContainer(both as never, context);
    await expect(service.removeContainer(both as never, context)).resolves.toEqual({});
    const podEvents = ["runPodSandbox", "postUpdatePodSandbox", "stopPodSandbox", "removePodSandbox"];
    const ctrEvents = ["postCreateContainer", "startContainer", "postStartContainer", "postUpdateContainer"];
    expect(seen).toEqual([
      ...podEvents.map((name) => ({ name, args: [podA, host.ctx] })),
      ...[...ctrEvents, "removeContainer"].map((name) => ({ name, args: [podA, ctrA, host.ctx] })),
    ]);
    // Each ran under the host, with the request's own signal.
    expect(host.calls.map((c) => c.what)).toEqual([...podEvents, ...ctrEvents, "removeContainer"]);
    expect(host.calls.every((c) => c.signal === signal)).toBe(true);
  });

  it("answer empty, without calling the host, when the plugin has no handler", async () => {
    const { service, host } = serve({});
    const both = { pod: podA, container: ctrA };
    await expect(service.runPodSandbox({ pod: podA } as never, context)).resolves.toEqual({});
    await expect(service.startContainer(both as never, context)).resolves.toEqual({});
    await expect(service.updatePodSandbox({ pod: podA } as never, context)).resolves.toEqual({});
    await expect(service.createContainer(both as never, context)).resolves.toEqual({});
    await expect(service.updateContainer(both as never, context)).resolves.toEqual({});
    await expect(service.stopContainer(both as never, context)).resolves.toEqual({});
    await expect(service.validateContainerAdjustment({} as never, context)).resolves.toEqual({});
    await expect(service.synchronize(create(SynchronizeRequestSchema, {}), context)).resolves.toEqual({});
    await expect(service.shutdown(create(EmptySchema), context)).resolves.toEqual({});
    expect(host.calls).toEqual([]);
    expect(host.shutdowns).toBe(1);
  });

  it("give updatePodSandbox the overhead and the resources it was sent, and only those", async () => {
    const got: unknown[] = [];
    const { service } = serve({ updatePodSandbox: (pod, resources) => void got.push([pod, resources]) });
    const req = (init: object) => create(UpdatePodSandboxRequestSchema, { pod: podA, ...init });
    await service.updatePodSandbox(req({ overheadLinuxResources: cpu, linuxResources: memory }), context);
    await service.updatePodSandbox(req({ linuxResources: memory }), context);
    await service.updatePodSandbox(req({ overheadLinuxResources: cpu }), context);
    await service.updatePodSandbox(req({}), context);
    expect(got).toEqual([
      [podA, { overhead: cpu, resources: memory }],
      [podA, { resources: memory }],
      [podA, { overhead: cpu }],
      [podA, {}],
    ]);
  });

  it("answer createContainer, updateContainer and stopContainer with what their handlers return", async () => {
    const adjust = { annotations: { "added-by": "test" } };
    const update = [{ containerId: "other" }];
    const evict = [{ containerId: "victim", reason: "test" }];
    const args: unknown[] = [];
    const { service, host } = serve({
      createContainer: (pod, container) => (args.push([pod, container]), { adjust, update, evict }),
      updateContainer: (pod, container, resources) => (args.push([pod, container, resources]), { update, evict }),
      stopContainer: (pod, container) => (args.push([pod, container]), { update }),
    });
    const create_ = create(CreateContainerRequestSchema, { pod: podA, container: ctrA });
    const update_ = create(UpdateContainerRequestSchema, { pod: podA, container: ctrA, linuxResources: memory });
    const stop_ = create(StopContainerRequestSchema, { pod: podA, container: ctrA });
    await expect(service.createContainer(create_, context)).resolves.toEqual({ adjust, update, evict });
    await expect(service.updateContainer(update_, context)).resolves.toEqual({ update, evict });
    await expect(service.stopContainer(stop_, context)).resolves.toEqual({ update });
    expect(args).toEqual([
      [podA, ctrA],
      [podA, ctrA, memory],
      [podA, ctrA],
    ]);
    expect(host.calls.map((c) => c.what)).toEqual(["createContainer", "updateContainer", "stopContainer"]);
  });

  it("answer empty when those handlers return nothing", async () => {
    const { service } = serve({
      createContainer: () => undefined,
      updateContainer: () => undefined,
      stopContainer: () => undefined,
      validateContainerAdjustment: () => undefined,
    });
    const both = { pod: podA, container: ctrA };
    await expect(service.createContainer(both as never, context)).resolves.toEqual({});
    await expect(service.updateContainer(both as never, context)).resolves.toEqual({});
    await expect(service.stopContainer(both as never, context)).resolves.toEqual({});
    await expect(service.validateContainerAdjustment({} as never, context)).resolves.toEqual({});
  });

  it("pass validateContainerAdjustment its request and answer with its verdict", async () => {
    const req = create(ValidateContainerAdjustmentRequestSchema, { pod: podA, container: ctrA });
    let seen: unknown;
    const { service, host } = serve({
      validateContainerAdjustment: (r) => {
        seen = r;
        return { reject: true, reason: "too big" };
      },
    });
    await expect(service.validateContainerAdjustment(req, context)).resolves.toEqual({
      reject: true,
      reason: "too big",
    });
    expect(seen).toBe(req);
    expect(host.calls).toEqual([{ what: "validateContainerAdjustment", signal }]);
  });

  it("turn NRI 0.6's StateChange into the handler of its event, and ignore events without one", async () => {
    const { h, seen } = recorder();
    const { service, host } = serve(h);
    const cases: [Event, string, boolean][] = [
      [Event.RUN_POD_SANDBOX, "runPodSandbox", false],
      [Event.STOP_POD_SANDBOX, "stopPodSandbox", false],
      [Event.REMOVE_POD_SANDBOX, "removePodSandbox", false],
      [Event.POST_UPDATE_POD_SANDBOX, "postUpdatePodSandbox", false],
      [Event.POST_CREATE_CONTAINER, "postCreateContainer", true],
      [Event.START_CONTAINER, "startContainer", true],
      [Event.POST_START_CONTAINER, "postStartContainer", true],
      [Event.POST_UPDATE_CONTAINER, "postUpdateContainer", true],
      [Event.REMOVE_CONTAINER, "removeContainer", true],
    ];
    for (const [event] of cases) {
      const req = create(StateChangeEventSchema, { event, pod: podA, container: ctrA });
      await expect(service.stateChange(req, context)).resolves.toEqual({});
    }
    expect(seen).toEqual(
      cases.map(([, name, withContainer]) => ({
        name,
        args: withContainer ? [podA, ctrA, host.ctx] : [podA, host.ctx],
      })),
    );
    // Events with a reply of their own never come as a StateChange: nothing runs.
    for (const event of [Event.CREATE_CONTAINER, Event.UPDATE_CONTAINER, Event.STOP_CONTAINER, Event.UNKNOWN]) {
      await service.stateChange(create(StateChangeEventSchema, { event, pod: podA, container: ctrA }), context);
    }
    expect(seen).toHaveLength(cases.length);
  });
});

describe("the Plugin service's Configure", () => {
  const handled = eventMask([Event.RUN_POD_SANDBOX, Event.START_CONTAINER, Event.UPDATE_POD_SANDBOX]);
  const configure = (init: object = {}) => create(ConfigureRequestSchema, { NRIVersion: "v0.8.0", ...init });

  it("subscribes to the events with handlers, and takes the runtime's request timeout", async () => {
    const { service, host } = serve({}, handled);
    await expect(service.configure(configure({ requestTimeout: 2500n }), context)).resolves.toEqual({
      events: handled,
    });
    expect(host.timeouts).toEqual([2500]);
    expect(host.configuredWith).toEqual([undefined]);
  });

  it("keeps the stub's timeout when the runtime sends none", async () => {
    const { service, host } = serve({}, handled);
    await service.configure(configure({ requestTimeout: 0n }), context);
    expect(host.timeouts).toEqual([]);
  });

  it("keeps to NRI 0.6's events when the runtime sends no version", async () => {
    const { service } = serve({}, handled);
    await expect(service.configure(configure({ NRIVersion: "" }), context)).resolves.toEqual({
      events: handled & NRI_0_6_EVENTS,
    });
    expect(handled & NRI_0_6_EVENTS).not.toBe(handled);
  });

  it("lets the handler narrow the subscription, and see the request", async () => {
    const narrowed = eventBit(Event.START_CONTAINER);
    const req = configure({ config: "some: yaml", runtimeName: "containerd" });
    let seen: unknown;
    const configureSeen = (r: unknown) => {
      seen = r;
      return narrowed;
    };
    const { service, host } = serve({ configure: configureSeen }, handled);
    await expect(service.configure(req, context)).resolves.toEqual({ events: narrowed });
    expect(seen).toBe(req);
    expect(host.calls).toEqual([{ what: "configure", signal }]);
    expect(host.configuredWith).toEqual([undefined]);
  });

  it("keeps the full subscription when the handler returns 0 or nothing", async () => {
    for (const answer of [0, undefined]) {
      const { service } = serve({ configure: () => answer }, handled);
      await expect(service.configure(configure(), context)).resolves.toEqual({ events: handled });
    }
  });

  it("refuses a subscription to events without a handler, then has the stub close", async () => {
    const extra = eventMask([Event.STOP_CONTAINER, Event.REMOVE_CONTAINER]);
    const { service, host } = serve({ configure: () => handled | extra }, handled);
    const err = await Promise.resolve(service.configure(configure(), context)).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TtrpcError);
    expect((err as TtrpcError).code).toBe(Code.InvalidArgument);
    expect((err as TtrpcError).message).toContain("STOP_CONTAINER, REMOVE_CONTAINER");
    // The stub hears of it only after the error status has gone out.
    expect(host.configuredWith).toEqual([]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(host.configuredWith).toEqual([err]);
  });

  it("passes a handler's failure on as the error, with its code", async () => {
    const { service, host } = serve(
      {
        configure: () => {
          throw new TtrpcError("no config", Code.FailedPrecondition);
        },
      },
      handled,
    );
    await expect(service.configure(configure(), context)).rejects.toMatchObject({ code: Code.FailedPrecondition });
    await new Promise((resolve) => setImmediate(resolve));
    expect(host.configuredWith.map((e) => e?.code)).toEqual([Code.FailedPrecondition]);
  });
});

describe("the Plugin service's Synchronize and Shutdown", () => {
  const pods = (...ids: string[]): PodSandbox[] => ids.map((id) => create(PodSandboxSchema, { id }));
  const ctrs = (...ids: string[]): Container[] => ids.map((id) => create(ContainerSchema, { id }));

  it("gathers the chunks and hands the handler all of them at once", async () => {
    const got: [string[], string[]][] = [];
    const update = [{ containerId: "c2" }];
    const { service, host } = serve({
      synchronize: (p, c) => (got.push([p.map((x) => x.id), c.map((x) => x.id)]), update),
    });
    const chunk = (p: PodSandbox[], c: Container[], more: boolean) =>
      create(SynchronizeRequestSchema, { pods: p, containers: c, more });
    await expect(service.synchronize(chunk(pods("p1"), ctrs("c1"), true), context)).resolves.toMatchObject({
      more: true,
    });
    await service.synchronize(chunk(pods("p2"), ctrs(), true), context);
    expect(got).toEqual([]);
    await expect(service.synchronize(chunk(pods(), ctrs("c2", "c3"), false), context)).resolves.toEqual({ update });
    expect(got).toEqual([
      [
        ["p1", "p2"],
        ["c1", "c2", "c3"],
      ],
    ]);
    expect(host.calls).toEqual([{ what: "synchronize", signal }]);
    // A later Synchronize starts from nothing.
    await service.synchronize(chunk(pods("p9"), ctrs(), false), context);
    expect(got[1]).toEqual([["p9"], []]);
  });

  it("answers an empty update when the handler returns nothing", async () => {
    const { service } = serve({ synchronize: () => undefined });
    await expect(service.synchronize(create(SynchronizeRequestSchema, {}), context)).resolves.toEqual({ update: [] });
  });

  it("tells the stub of Shutdown before the handler runs", async () => {
    const order: string[] = [];
    const host = new RecordingHost(0);
    host.shuttingDown = () => void order.push("stub");
    const service = pluginService({ shutdown: () => void order.push("handler") }, host) as Required<PluginServer>;
    await expect(service.shutdown(create(EmptySchema), context)).resolves.toEqual({});
    expect(order).toEqual(["stub", "handler"]);
    expect(host.calls).toEqual([{ what: "shutdown", signal }]);
  });
});
