import { Event } from "../../gen/nri/pkg/api/v1alpha1/api_pb.js";
import type { PluginHandlers } from "./plugin-handlers.js";

/** The bit of event `e` in a ConfigureResponse mask: event N is 1 << (N - 1). */
export function eventBit(e: Event): number {
  return 1 << (e - 1);
}

/** The mask of the given events. */
export function eventMask(events: Iterable<Event>): number {
  let mask = 0;
  for (const e of events) mask |= eventBit(e);
  return mask;
}

/** The events set in `mask`, in number order. */
export function eventsOf(mask: number): Event[] {
  const out: Event[] = [];
  for (let e = Event.RUN_POD_SANDBOX; e < Event.LAST; e++) if (mask & eventBit(e)) out.push(e);
  return out;
}

/** The handler that subscribes to each event: implementing it is subscribing, as in Go's stub. */
export const EVENT_HANDLERS = {
  runPodSandbox: Event.RUN_POD_SANDBOX,
  stopPodSandbox: Event.STOP_POD_SANDBOX,
  removePodSandbox: Event.REMOVE_POD_SANDBOX,
  createContainer: Event.CREATE_CONTAINER,
  postCreateContainer: Event.POST_CREATE_CONTAINER,
  startContainer: Event.START_CONTAINER,
  postStartContainer: Event.POST_START_CONTAINER,
  updateContainer: Event.UPDATE_CONTAINER,
  postUpdateContainer: Event.POST_UPDATE_CONTAINER,
  stopContainer: Event.STOP_CONTAINER,
  removeContainer: Event.REMOVE_CONTAINER,
  updatePodSandbox: Event.UPDATE_POD_SANDBOX,
  postUpdatePodSandbox: Event.POST_UPDATE_POD_SANDBOX,
  validateContainerAdjustment: Event.VALIDATE_CONTAINER_ADJUSTMENT,
} as const satisfies Partial<Record<keyof PluginHandlers, Event>>;

/** The mask of the events whose handlers `handlers` implements. */
export function handledEvents(handlers: PluginHandlers): number {
  let mask = 0;
  for (const [name, e] of Object.entries(EVENT_HANDLERS)) {
    if (typeof handlers[name as keyof PluginHandlers] === "function") mask |= eventBit(e);
  }
  return mask;
}

/**
 * The events NRI 0.6 knows (RUN_POD_SANDBOX … REMOVE_CONTAINER). Its runtime
 * refuses a plugin whose mask names any other ("invalid plugin events"), so
 * the stub keeps to these when the runtime does not send its NRI version.
 */
export const NRI_0_6_EVENTS = eventBit(Event.UPDATE_POD_SANDBOX) - 1;
