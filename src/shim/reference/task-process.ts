// One process of a task, the init or an exec: its pid, its state as
// containerd's State reports it, and its exit, which the shim's Reaper
// reports because runc, not the shim, forked it.
import { Status } from "../../../gen/containerd/v1/types/task_pb.js";
import type { ExitStatus } from "../reaper.js";
import type { ProcessIo } from "./process-io.js";

/** A process of a container. */
export class TaskProcess {
  pid = 0;
  #status = Status.CREATED;
  #exit: ExitStatus | undefined;
  readonly #exited: Promise<ExitStatus>;
  #onExit!: (s: ExitStatus) => void;
  /** Resolves once the start event is out: the exit event waits for it, so containerd sees them in order. */
  readonly started: Promise<void>;
  #markStarted!: () => void;

  constructor(
    readonly containerId: string,
    /** "" for the init process. */
    readonly execId: string,
    readonly io: ProcessIo,
    readonly terminal: boolean,
  ) {
    this.#exited = new Promise((resolve) => {
      this.#onExit = resolve;
    });
    this.started = new Promise((resolve) => {
      this.#markStarted = resolve;
    });
  }

  /** The start event was published (or the process will never start). */
  markStarted(): void {
    this.#markStarted();
  }

  get status(): Status {
    return this.#exit ? Status.STOPPED : this.#status;
  }

  get exit(): ExitStatus | undefined {
    return this.#exit;
  }

  /** Resolves when the process has exited. */
  wait(): Promise<ExitStatus> {
    return this.#exited;
  }

  setStatus(status: Status.RUNNING | Status.PAUSED): void {
    this.#status = status;
  }

  exited(status: ExitStatus): void {
    this.#exit = status;
    this.#onExit(status);
  }
}
