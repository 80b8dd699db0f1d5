// The logger example: subscribes to every event and prints each request it
// receives as one JSON line (`{"event":"CreateContainer","pod":{...},...}`).
// Copy it to start a plugin of your own.
import { type DescMessage, type MessageShape, toJson } from "@bufbuild/protobuf";
import {
  ConfigureRequestSchema,
  ContainerSchema,
  LinuxResourcesSchema,
  PodSandboxSchema,
  ValidateContainerAdjustmentRequestSchema,
} from "../../../gen/nri/pkg/api/v1alpha1/api_pb.js";
import type { PluginHandlers } from "../plugin-handlers.js";

/** Handlers that log every event through `write` (default: a line on stdout). */
export function loggerPlugin(write: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): PluginHandlers {
  const json = <D extends DescMessage>(schema: D, m: MessageShape<D> | undefined) =>
    m === undefined ? undefined : toJson(schema, m);
  const log = (event: string, fields: Record<string, unknown> = {}): void => {
    write(JSON.stringify({ event, ...fields }));
  };
  const pod = (event: string) => (p: MessageShape<typeof PodSandboxSchema>) =>
    log(event, { pod: json(PodSandboxSchema, p) });
  const container =
    (event: string) => (p: MessageShape<typeof PodSandboxSchema>, c: MessageShape<typeof ContainerSchema>) =>
      log(event, { pod: json(PodSandboxSchema, p), container: json(ContainerSchema, c) });
  return {
    configure: (req) => void log("Configure", json(ConfigureRequestSchema, req) as Record<string, unknown>),
    synchronize: (pods, containers) =>
      void log("Synchronize", {
        pods: pods.map((p) => json(PodSandboxSchema, p)),
        containers: containers.map((c) => json(ContainerSchema, c)),
      }),
    shutdown: () => log("Shutdown"),
    runPodSandbox: pod("RunPodSandbox"),
    updatePodSandbox: (p, r) =>
      log("UpdatePodSandbox", {
        pod: json(PodSandboxSchema, p),
        overhead: json(LinuxResourcesSchema, r.overhead),
        resources: json(LinuxResourcesSchema, r.resources),
      }),
    postUpdatePodSandbox: pod("PostUpdatePodSandbox"),
    stopPodSandbox: pod("StopPodSandbox"),
    removePodSandbox: pod("RemovePodSandbox"),
    createContainer: (p, c) => void container("CreateContainer")(p, c),
    postCreateContainer: container("PostCreateContainer"),
    startContainer: container("StartContainer"),
    postStartContainer: container("PostStartContainer"),
    updateContainer: (p, c, r) =>
      void log("UpdateContainer", {
        pod: json(PodSandboxSchema, p),
        container: json(ContainerSchema, c),
        resources: json(LinuxResourcesSchema, r),
      }),
    postUpdateContainer: container("PostUpdateContainer"),
    stopContainer: (p, c) => void container("StopContainer")(p, c),
    removeContainer: container("RemoveContainer"),
    validateContainerAdjustment: (req) =>
      void log(
        "ValidateContainerAdjustment",
        json(ValidateContainerAdjustmentRequestSchema, req) as Record<string, unknown>,
      ),
  };
}
