import type { MessageInitShape } from "@bufbuild/protobuf";
import type {
  ConfigureRequest,
  Container,
  ContainerAdjustmentSchema,
  ContainerEvictionSchema,
  ContainerUpdateSchema,
  LinuxResources,
  PodSandbox,
  ValidateContainerAdjustmentRequest,
} from "../../gen/nri/pkg/api/v1alpha1/api_pb.js";

/** A container update as a protobuf-es init object. */
export type ContainerUpdateInit = MessageInitShape<typeof ContainerUpdateSchema>;
/** A container adjustment as a protobuf-es init object. */
export type ContainerAdjustmentInit = MessageInitShape<typeof ContainerAdjustmentSchema>;
/** A container eviction as a protobuf-es init object. */
export type ContainerEvictionInit = MessageInitShape<typeof ContainerEvictionSchema>;

/** What every handler gets besides its event. */
export interface NriContext {
  /** Aborted when the request's time is up (the stub's requestTimeoutMs) or the connection closes. */
  readonly signal: AbortSignal;
}

/** What a handler returns: its answer, nothing (the empty answer), or a promise of either. */
export type HandlerResult<T> = T | undefined | Promise<T | undefined>;

/**
 * An NRI plugin: implement the handlers you need. Implementing an event
 * handler subscribes the plugin to that event (the mask Configure returns),
 * as with Go's pkg/stub. Throwing (or rejecting) answers the runtime with an
 * error status: a TtrpcError keeps its code, anything else is UNKNOWN with
 * its message.
 */
export interface PluginHandlers {
  /**
   * The runtime's configuration of this plugin. May return a mask (see
   * `eventMask`) narrowing the subscription; it may not name events without
   * a handler.
   */
  configure?(request: ConfigureRequest, ctx: NriContext): HandlerResult<number>;
  /** The pods and containers that exist, once after Configure (chunks already joined). */
  synchronize?(pods: PodSandbox[], containers: Container[], ctx: NriContext): HandlerResult<ContainerUpdateInit[]>;
  /** The runtime is shutting the plugin down. */
  shutdown?(ctx: NriContext): HandlerResult<void>;

  /** A pod sandbox is being started. */
  runPodSandbox?(pod: PodSandbox, ctx: NriContext): HandlerResult<void>;
  /** NRI > 0.6: a pod sandbox's resources are being updated. */
  updatePodSandbox?(
    pod: PodSandbox,
    resources: { overhead?: LinuxResources; resources?: LinuxResources },
    ctx: NriContext,
  ): HandlerResult<void>;
  /** NRI > 0.6: a pod sandbox's resources were updated. */
  postUpdatePodSandbox?(pod: PodSandbox, ctx: NriContext): HandlerResult<void>;
  /** A pod sandbox is being stopped. */
  stopPodSandbox?(pod: PodSandbox, ctx: NriContext): HandlerResult<void>;
  /** A pod sandbox is being removed. */
  removePodSandbox?(pod: PodSandbox, ctx: NriContext): HandlerResult<void>;

  /** A container is being created: return adjustments to it, updates to (and evictions of) others. */
  createContainer?(
    pod: PodSandbox,
    container: Container,
    ctx: NriContext,
  ): HandlerResult<{
    adjust?: ContainerAdjustmentInit;
    update?: ContainerUpdateInit[];
    evict?: ContainerEvictionInit[];
  }>;
  /** A container was created. */
  postCreateContainer?(pod: PodSandbox, container: Container, ctx: NriContext): HandlerResult<void>;
  /** A container is being started. */
  startContainer?(pod: PodSandbox, container: Container, ctx: NriContext): HandlerResult<void>;
  /** A container was started. */
  postStartContainer?(pod: PodSandbox, container: Container, ctx: NriContext): HandlerResult<void>;
  /** A container's resources are being updated: return further updates or evictions. */
  updateContainer?(
    pod: PodSandbox,
    container: Container,
    resources: LinuxResources | undefined,
    ctx: NriContext,
  ): HandlerResult<{ update?: ContainerUpdateInit[]; evict?: ContainerEvictionInit[] }>;
  /** A container's resources were updated. */
  postUpdateContainer?(pod: PodSandbox, container: Container, ctx: NriContext): HandlerResult<void>;
  /** A container is being stopped: return updates to other containers. */
  stopContainer?(
    pod: PodSandbox,
    container: Container,
    ctx: NriContext,
  ): HandlerResult<{ update?: ContainerUpdateInit[] }>;
  /** A container is being removed. */
  removeContainer?(pod: PodSandbox, container: Container, ctx: NriContext): HandlerResult<void>;

  /** NRI > 0.6: a last look at the merged adjustment of all plugins; return `{ reject: true, reason }` to refuse it. */
  validateContainerAdjustment?(
    request: ValidateContainerAdjustmentRequest,
    ctx: NriContext,
  ): HandlerResult<{ reject?: boolean; reason?: string }>;
}
