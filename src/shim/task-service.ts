// Task v2 and v3 from one implementation. The two services are the same
// contract under two packages (the package is part of every method name on
// the wire), so one v3 implementation is registered under both: containerd
// 1.x calls containerd.task.v2.Task, 2.x calls v3 or, offered version 2, v2.
// Here too the SDK keeps the tasks Create made and Delete removed, so that
// Shutdown ends the shim once the last task is gone, as Go's runc shim does.
import type { ServiceImpl } from "../service-impl.js";
import type { Server } from "../server.js";
import { Task as TaskV2 } from "../../gen/containerd/task/v2/shim_pb.js";
import { Task as TaskV3 } from "../../gen/containerd/task/v3/shim_pb.js";

/** A shim's task service: the v3 shape, served as v2 and v3. Methods left out answer UNIMPLEMENTED. */
export type TaskService = Partial<ServiceImpl<typeof TaskV3>>;

/** Keeps the live task ids and ends the shim when Shutdown finds none (or is told `now`). */
export class TaskLifecycle {
  readonly #tasks = new Set<string>();
  constructor(private readonly onShutdown: () => void) {}

  /** Task ids created and not yet deleted. */
  get liveTasks(): ReadonlySet<string> {
    return this.#tasks;
  }

  /** The service as registered: `impl`, with Create, Delete and Shutdown tracked. */
  wrap(impl: TaskService): TaskService {
    const wrapped: TaskService = { ...impl };
    if (impl.create) {
      const create = impl.create;
      wrapped.create = async (req, ctx) => {
        const res = await create(req, ctx);
        this.#tasks.add(req.id);
        return res;
      };
    }
    if (impl.delete) {
      const del = impl.delete;
      wrapped.delete = async (req, ctx) => {
        const res = await del(req, ctx);
        if (req.execId === "") this.#tasks.delete(req.id);
        return res;
      };
    }
    const shutdown = impl.shutdown;
    wrapped.shutdown = async (req, ctx) => {
      const res = shutdown ? await shutdown(req, ctx) : {};
      // The reply goes out first: containerd waits for it, then sees the connection end.
      if (req.now || this.#tasks.size === 0) setImmediate(this.onShutdown);
      return res;
    };
    return wrapped;
  }
}

/** Registers `impl` as containerd.task.v3.Task and containerd.task.v2.Task. */
export function registerTaskService(server: Server, impl: TaskService): void {
  server.register(TaskV3, impl);
  // Same fields and numbers under another package: a v2 request is a v3
  // request with another $typeName, and the reply is encoded by v2's schema.
  server.register(TaskV2, impl as unknown as Partial<ServiceImpl<typeof TaskV2>>);
}
