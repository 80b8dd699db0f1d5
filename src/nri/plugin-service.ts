// The Plugin service a stub serves on mux connection 1: each NRI request
// mapped onto the user's handlers, under the stub's request timeout.
import { create } from "@bufbuild/protobuf";
import {
  type Container,
  Event,
  type PodSandbox,
  SynchronizeResponseSchema,
} from "../../gen/nri/pkg/api/v1alpha1/api_pb.js";
import type { PluginServer } from "../../gen/nri/pkg/api/v1alpha1/api_ttrpc.js";
import { Code } from "../code.js";
import { TtrpcError } from "../ttrpc-error.js";
import { eventsOf, NRI_0_6_EVENTS } from "./event-mask.js";
import type { NriContext, PluginHandlers } from "./plugin-handlers.js";

/** What the Plugin service needs of its stub, for one connection. */
export interface PluginServiceHost {
  /** The events the plugin has handlers for. */
  readonly events: number;
  /** Runs a handler under the request timeout; a throw or a timeout becomes the error status. */
  call<T>(what: string, signal: AbortSignal, fn: (ctx: NriContext) => T | Promise<T>): Promise<T>;
  /** The runtime's request timeout from Configure (the stub keeps the user's own if set). */
  useRequestTimeout(ms: number): void;
  /** Configure was answered, or failed with `error` (the stub then closes the connection). */
  configured(error?: TtrpcError): void;
  /** The runtime sent Shutdown. */
  shuttingDown(): void;
}

type PodEvent = (pod: PodSandbox, ctx: NriContext) => unknown;
type ContainerEvent = (pod: PodSandbox, container: Container, ctx: NriContext) => unknown;
/** Runs an event whose reply carries nothing: pod events take (pod, ctx), container events (pod, container, ctx). */
type Lifecycle = (
  what: keyof PluginHandlers,
  signal: AbortSignal,
  pod: PodSandbox | undefined,
  container: Container | undefined,
) => Promise<void>;

const pod = (p: PodSandbox | undefined) => p as PodSandbox;
const ctr = (c: Container | undefined) => c as Container;

/** The Plugin service of one connection. */
export function pluginService(h: PluginHandlers, host: PluginServiceHost): Partial<PluginServer> {
  const lifecycle: Lifecycle = async (what, signal, pod, container) => {
    const fn = h[what];
    if (fn === undefined) return;
    await host.call(what, signal, (ctx) =>
      what.endsWith("PodSandbox")
        ? (fn as PodEvent).call(h, pod as PodSandbox, ctx)
        : (fn as ContainerEvent).call(h, pod as PodSandbox, container as Container, ctx),
    );
  };
  return {
    configure: configureHandler(h, host),
    synchronize: synchronizeHandler(h, host),
    shutdown: async (_req, { signal }) => {
      host.shuttingDown();
      if (h.shutdown) await host.call("shutdown", signal, (ctx) => h.shutdown!(ctx));
      return {};
    },
    ...podHandlers(h, host, lifecycle),
    ...containerHandlers(h, host, lifecycle),
    // NRI 0.6 sends every event without a reply payload through StateChange.
    stateChange: async (req, { signal }) => {
      const what = STATE_CHANGE_HANDLERS[req.event];
      if (what !== undefined) await lifecycle(what, signal, req.pod, req.container);
      return {};
    },
    validateContainerAdjustment: async (req, { signal }) => {
      if (!h.validateContainerAdjustment) return {};
      const r = await host.call("validateContainerAdjustment", signal, (ctx) =>
        h.validateContainerAdjustment!(req, ctx),
      );
      return r ?? {};
    },
  };
}

/** Configure: the events to subscribe, only those with handlers; a failure closes the connection. */
function configureHandler(h: PluginHandlers, host: PluginServiceHost): PluginServer["configure"] {
  return async (req, { signal }) => {
    if (req.requestTimeout > 0n) host.useRequestTimeout(Number(req.requestTimeout));
    try {
      let events = host.events;
      if (h.configure) {
        const asked = (await host.call("configure", signal, (ctx) => h.configure!(req, ctx))) ?? 0;
        const extra = asked & ~host.events;
        if (extra !== 0) {
          const names = eventsOf(extra).map((e) => Event[e]);
          throw new TtrpcError(
            `nri: configure subscribed to events without a handler: ${names.join(", ")}`,
            Code.InvalidArgument,
          );
        }
        if (asked !== 0) events = asked;
      }
      if (req.NRIVersion === "") events &= NRI_0_6_EVENTS;
      host.configured();
      return { events };
    } catch (e) {
      // After the error status has gone out: start() then closes the connection.
      setImmediate(() => host.configured(TtrpcError.from(e)));
      throw e;
    }
  };
}

/** Synchronize: chunks (more = true) are gathered, and the handler sees them all at once. */
function synchronizeHandler(h: PluginHandlers, host: PluginServiceHost): PluginServer["synchronize"] {
  const syncPods: PodSandbox[] = [];
  const syncContainers: Container[] = [];
  return async (req, { signal }) => {
    syncPods.push(...req.pods);
    syncContainers.push(...req.containers);
    if (req.more) return create(SynchronizeResponseSchema, { more: true });
    const pods = syncPods.splice(0);
    const containers = syncContainers.splice(0);
    if (!h.synchronize) return {};
    const update = await host.call("synchronize", signal, (ctx) => h.synchronize!(pods, containers, ctx));
    return { update: update ?? [] };
  };
}

function podHandlers(h: PluginHandlers, host: PluginServiceHost, lifecycle: Lifecycle): Partial<PluginServer> {
  return {
    runPodSandbox: async (req, { signal }) => {
      await lifecycle("runPodSandbox", signal, req.pod, undefined);
      return {};
    },
    updatePodSandbox: async (req, { signal }) => {
      if (h.updatePodSandbox) {
        const resources = {
          ...(req.overheadLinuxResources ? { overhead: req.overheadLinuxResources } : {}),
          ...(req.linuxResources ? { resources: req.linuxResources } : {}),
        };
        await host.call("updatePodSandbox", signal, (ctx) => h.updatePodSandbox!(pod(req.pod), resources, ctx));
      }
      return {};
    },
    postUpdatePodSandbox: async (req, { signal }) => {
      await lifecycle("postUpdatePodSandbox", signal, req.pod, undefined);
      return {};
    },
    stopPodSandbox: async (req, { signal }) => {
      await lifecycle("stopPodSandbox", signal, req.pod, undefined);
      return {};
    },
    removePodSandbox: async (req, { signal }) => {
      await lifecycle("removePodSandbox", signal, req.pod, undefined);
      return {};
    },
  };
}

function containerHandlers(h: PluginHandlers, host: PluginServiceHost, lifecycle: Lifecycle): Partial<PluginServer> {
  return {
    createContainer: async (req, { signal }) => {
      if (!h.createContainer) return {};
      const r = await host.call("createContainer", signal, (ctx) =>
        h.createContainer!(pod(req.pod), ctr(req.container), ctx),
      );
      return r ?? {};
    },
    postCreateContainer: async (req, { signal }) => {
      await lifecycle("postCreateContainer", signal, req.pod, req.container);
      return {};
    },
    startContainer: async (req, { signal }) => {
      await lifecycle("startContainer", signal, req.pod, req.container);
      return {};
    },
    postStartContainer: async (req, { signal }) => {
      await lifecycle("postStartContainer", signal, req.pod, req.container);
      return {};
    },
    updateContainer: async (req, { signal }) => {
      if (!h.updateContainer) return {};
      const r = await host.call("updateContainer", signal, (ctx) =>
        h.updateContainer!(pod(req.pod), ctr(req.container), req.linuxResources, ctx),
      );
      return r ?? {};
    },
    postUpdateContainer: async (req, { signal }) => {
      await lifecycle("postUpdateContainer", signal, req.pod, req.container);
      return {};
    },
    stopContainer: async (req, { signal }) => {
      if (!h.stopContainer) return {};
      const r = await host.call("stopContainer", signal, (ctx) =>
        h.stopContainer!(pod(req.pod), ctr(req.container), ctx),
      );
      return r ?? {};
    },
    removeContainer: async (req, { signal }) => {
      await lifecycle("removeContainer", signal, req.pod, req.container);
      return {};
    },
  };
}

const STATE_CHANGE_HANDLERS: Partial<Record<Event, keyof PluginHandlers>> = {
  [Event.RUN_POD_SANDBOX]: "runPodSandbox",
  [Event.STOP_POD_SANDBOX]: "stopPodSandbox",
  [Event.REMOVE_POD_SANDBOX]: "removePodSandbox",
  [Event.POST_CREATE_CONTAINER]: "postCreateContainer",
  [Event.START_CONTAINER]: "startContainer",
  [Event.POST_START_CONTAINER]: "postStartContainer",
  [Event.POST_UPDATE_CONTAINER]: "postUpdateContainer",
  [Event.REMOVE_CONTAINER]: "removeContainer",
  [Event.POST_UPDATE_POD_SANDBOX]: "postUpdatePodSandbox",
};
