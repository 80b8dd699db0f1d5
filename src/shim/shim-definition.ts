// What a shim author writes: the task service and, optionally, more services,
// the `delete` cleanup and the `-info` answer. runShim does the rest.
import type { DescService, MessageInitShape } from "@bufbuild/protobuf";
import type { RuntimeInfoSchema } from "../../gen/containerd/types/introspection_pb.js";
import type { Server } from "../server.js";
import type { ServiceImpl } from "../service-impl.js";
import type { ShimArgs } from "./flags.js";
import type { EventPublisher } from "./publisher.js";
import type { Reaper } from "./reaper.js";
import type { ShimLog } from "./shim-log.js";
import type { TaskService } from "./task-service.js";

/** What the long-lived server gives the services it runs. */
export interface ShimContext {
  readonly args: ShimArgs;
  readonly namespace: string;
  readonly id: string;
  /** The bundle: the server's working directory. */
  readonly bundle: string;
  /** Forwards events to containerd (TTRPC_ADDRESS). */
  readonly publisher: EventPublisher;
  /** Waits for reparented processes; undefined when the definition sets `subreaper: false`. */
  readonly reaper: Reaper | undefined;
  readonly log: ShimLog;
  readonly server: Server;
  /** Ends the shim: stops serving, drains events, exits. */
  shutdown(): void;
}

/** What `delete` (containerd cleaning up after a shim it cannot reach) reports. */
export interface DeleteResult {
  pid: number;
  exitStatus: number;
  exitedAt: Date;
}

/** What `delete` knows: the flags, with the bundle from `-bundle` (or the working directory). */
export interface DeleteContext {
  readonly args: ShimArgs;
  readonly namespace: string;
  readonly id: string;
  readonly bundle: string;
}

/** One more service on the shim's server, typed by its descriptor (see {@link shimService}). */
export interface ShimService {
  /** Registers the service on the shim's server. */
  register(server: Server): void;
}

/** Pairs a service descriptor with its implementation, type-checked against each other. */
export function shimService<S extends DescService>(service: S, impl: Partial<ServiceImpl<S>>): ShimService {
  return { register: (server) => server.register(service, impl) };
}

/** A shim, as runShim runs it. */
export interface ShimDefinition {
  /** The runtime's name, for -info and -v (e.g. "io.containerd.ttrpces.v2"). */
  readonly name: string;
  readonly version: string;
  readonly revision?: string;
  /** Make the server child subreaper and start a Reaper (default true; needs koffi). */
  readonly subreaper?: boolean;
  /** The task service, served as containerd.task.v2.Task and v3. */
  task(context: ShimContext): TaskService | Promise<TaskService>;
  /** More services on the same server (Sandbox, Migration, your own). */
  services?(context: ShimContext): ShimService[];
  /** Runs when the server ends, before it exits. */
  close?(): Promise<void> | void;
  /** `delete`: clean up what the dead shim left; default reports a SIGKILL death. */
  delete?(context: DeleteContext): Promise<DeleteResult> | DeleteResult;
  /** `-info`: stdin holds the runtime options; default names the runtime and its version. */
  info?(options: Uint8Array): MessageInitShape<typeof RuntimeInfoSchema>;
}
