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

type Result<T> = T | undefined | Promise<T | undefined>;

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
  configure?(request: ConfigureRequest, ctx: NriContext): Result<number>;
  /** The pods and containers that exist, once after Configure (chunks already joined). */
  synchronize?(pods: PodSandbox[], containers: Container[], ctx: NriContext): Result<ContainerUpdateInit[]>;
  /** The runtime is shutting the plugin down. */
  shutdown?(ctx: NriContext): Result<void>;

  runPodSandbox?(pod: PodSandbox, ctx: NriContext): Result<void>;
  updatePodSandbox?(
    pod: PodSandbox,
    resources: { overhead?: LinuxResources; resources?: LinuxResources },
    ctx: NriContext,
  ): Result<void>;
  postUpdatePodSandbox?(pod: PodSandbox, ctx: NriContext): Result<void>;
  stopPodSandbox?(pod: PodSandbox, ctx: NriContext): Result<void>;
  removePodSandbox?(pod: PodSandbox, ctx: NriContext): Result<void>;

  createContainer?(
    pod: PodSandbox,
    container: Container,
    ctx: NriContext,
  ): Result<{ adjust?: ContainerAdjustmentInit; update?: ContainerUpdateInit[]; evict?: ContainerEvictionInit[] }>;
  postCreateContainer?(pod: PodSandbox, container: Container, ctx: NriContext): Result<void>;
  startContainer?(pod: PodSandbox, container: Container, ctx: NriContext): Result<void>;
  postStartContainer?(pod: PodSandbox, container: Container, ctx: NriContext): Result<void>;
  updateContainer?(
    pod: PodSandbox,
    container: Container,
    resources: LinuxResources | undefined,
    ctx: NriContext,
  ): Result<{ update?: ContainerUpdateInit[]; evict?: ContainerEvictionInit[] }>;
  postUpdateContainer?(pod: PodSandbox, container: Container, ctx: NriContext): Result<void>;
  stopContainer?(pod: PodSandbox, container: Container, ctx: NriContext): Result<{ update?: ContainerUpdateInit[] }>;
  removeContainer?(pod: PodSandbox, container: Container, ctx: NriContext): Result<void>;

  /** NRI > 0.6: a last look at the merged adjustment of all plugins; return `{ reject: true, reason }` to refuse it. */
  validateContainerAdjustment?(
    request: ValidateContainerAdjustmentRequest,
    ctx: NriContext,
  ): Result<{ reject?: boolean; reason?: string }>;
}
