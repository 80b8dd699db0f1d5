/**
 * Write a containerd runtime shim in TypeScript, in the way of Go's
 * `pkg/shim`: `runShim` handles the binary protocol (start, delete, -info,
 * -v, both bootstrap formats), spawns the long-lived server, serves your task
 * service as containerd.task.v2.Task and v3, forwards events to containerd,
 * reaps processes runc leaves to it, and shuts down after the last task.
 *
 * @module ttrpc-es/shim
 */

export { runShim } from "./run-shim.js";
export { encodeDelete } from "./binary-replies.js";
export {
  shimService,
  type ShimDefinition,
  type ShimContext,
  type ShimService,
  type DeleteContext,
  type DeleteResult,
} from "./shim-definition.js";
export type { TaskService } from "./task-service.js";
export { registerTaskService, TaskLifecycle } from "./task-service.js";
export { parseShimArgs, type ShimArgs, type ShimAction } from "./flags.js";
export {
  readStartInput,
  encodeStartReply,
  bootstrapResult,
  taskApiVersion,
  TASK_API_V2,
  TASK_API_V3,
  type StartInput,
  type StartReply,
} from "./bootstrap.js";
export { shimSocketAddress, DEFAULT_SOCKET_DIR } from "./socket-address.js";
export { EventPublisher, NAMESPACE_METADATA_KEY, MAX_REQUEUE, type EventPublisherOptions } from "./publisher.js";
export { Reaper, type ExitStatus } from "./reaper.js";
export { ShimLog, type LogLevel } from "./shim-log.js";
export { ShimError, type ShimErrorCode } from "./shim-error.js";
export { processIo, type ShimIo } from "./shim-io.js";
export * as topics from "./topics.js";
/** containerd.runtime.bootstrap.v1: BootstrapParams and BootstrapResult (containerd 2.3+). */
export * as bootstrapApi from "../../gen/containerd/runtime/bootstrap/v1/bootstrap_pb.js";
/** containerd.types introspection: RuntimeInfo, which `-info` prints. */
export * as runtimeInfoTypes from "../../gen/containerd/types/introspection_pb.js";
/** containerd.types Mount: the rootfs of a Create. */
export * as mountTypes from "../../gen/containerd/types/mount_pb.js";
/** containerd.types Envelope: what the publisher forwards. */
export * as eventTypes from "../../gen/containerd/types/event_pb.js";
// containerd's messages a shim works with, generated from proto/containerd.
/** containerd.task.v3: the Task service's requests and responses (v2 has the same shapes). */
export * as taskApi from "../../gen/containerd/task/v3/shim_pb.js";
/** containerd.events: TaskCreate, TaskStart, TaskExit, TaskDelete, ... for the publisher. */
export * as taskEvents from "../../gen/containerd/events/task_pb.js";
/** containerd.v1.types: the process Status enum and ProcessInfo. */
export * as processTypes from "../../gen/containerd/v1/types/task_pb.js";
