// The reference shim's task service: containers run by runc, one or more per
// shim, each with its init and exec processes. Events go to containerd as
// Go's runc shim sends them; exits arrive through the SDK's Reaper.
import type { ChildProcess, StdioOptions } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  TaskCreateSchema,
  TaskDeleteSchema,
  TaskExecAddedSchema,
  TaskExecStartedSchema,
  TaskExitSchema,
  TaskOOMSchema,
  TaskPausedSchema,
  TaskResumedSchema,
  TaskStartSchema,
} from "../../../gen/containerd/events/task_pb.js";
import { Status } from "../../../gen/containerd/v1/types/task_pb.js";
import { Code } from "../../code.js";
import { TtrpcError } from "../../ttrpc-error.js";
import type { ShimContext } from "../shim-definition.js";
import type { TaskService } from "../task-service.js";
import * as topics from "../topics.js";
import { ProcessIo } from "./process-io.js";
import { ConsoleSocket } from "./console.js";
import { OomCounter } from "./oom-counter.js";
import { mountRootfs, unmountRootfs } from "./rootfs.js";
import type { Runc } from "./runc.js";
import { TaskProcess } from "./task-process.js";

interface Container {
  readonly id: string;
  readonly bundle: string;
  readonly init: TaskProcess;
  readonly execs: Map<string, TaskProcess>;
  /** Exec specs, from Exec until Start runs them. */
  readonly specs: Map<string, string>;
  /** The OOM kills in its memory cgroup, when it has one; looked at every second until Delete. */
  readonly oom: OomCounter | undefined;
  readonly oomPoll: NodeJS.Timeout | undefined;
}

/** How often a running container's OOM count is read (oom-counter.ts says why it is read at all). */
const OOM_POLL_MS = 1000;

const notFound = (what: string) => new TtrpcError(`${what}: not found`, Code.NotFound);

/** Runs containers with runc, for one shim. */
export class RuncTaskService {
  readonly #containers = new Map<string, Container>();

  constructor(
    private readonly shim: ShimContext,
    private readonly runc: Runc,
    readonly version: string,
  ) {}

  #publish<T extends DescMessage>(topic: string, schema: T, event: MessageInitShape<T>): Promise<void> {
    return this.shim.publisher.publish(topic, schema, event).catch(() => undefined); // retried by the publisher
  }

  #container(id: string): Container {
    const c = this.#containers.get(id);
    if (!c) throw notFound(`container ${id}`);
    return c;
  }

  #process(id: string, execId: string): TaskProcess {
    const c = this.#container(id);
    if (execId === "") return c.init;
    const p = c.execs.get(execId);
    if (!p) throw notFound(`process ${execId}`);
    return p;
  }

  #watchExit(c: Container, p: TaskProcess): void {
    const reaper = this.shim.reaper;
    if (!reaper) throw new TtrpcError("the reference shim needs its reaper", Code.FailedPrecondition);
    void reaper.wait(p.pid).then(async (exit) => {
      p.exited(exit);
      p.io.closeStdin();
      await p.started;
      await this.#publishOom(c);
      await this.#publish(topics.TASK_EXIT, TaskExitSchema, {
        containerId: c.id,
        id: p.execId || c.id,
        pid: exit.pid,
        exitStatus: exit.status,
        exitedAt: timestampFromDate(exit.exitedAt),
      });
    });
  }

  /** /tasks/oom, when the killer acted in the container's cgroup since the last look. */
  async #publishOom(c: Container): Promise<void> {
    if (c.oom?.fired()) await this.#publish(topics.TASK_OOM, TaskOOMSchema, { containerId: c.id });
  }

  /** The service, as the SDK registers it. */
  service(): TaskService {
    return {
      create: (req) => this.create(req),
      start: (req) => this.start(req.id, req.execId),
      state: (req) => this.state(req.id, req.execId),
      wait: async (req) => {
        const exit = await this.#process(req.id, req.execId).wait();
        return { exitStatus: exit.status, exitedAt: timestampFromDate(exit.exitedAt) };
      },
      kill: (req) => this.kill(req.id, req.execId, req.signal, req.all),
      delete: (req) => this.delete(req.id, req.execId),
      exec: (req) => this.exec(req),
      closeIO: (req) => {
        if (req.stdin) this.#process(req.id, req.execId).io.closeStdin();
        return {};
      },
      pids: async (req) => {
        const c = this.#container(req.id);
        return { processes: (await this.runc.ps(c.id, c.bundle)).map((pid) => ({ pid })) };
      },
      pause: (req) => this.#pause(req.id, true),
      resume: (req) => this.#pause(req.id, false),
      connect: (req) => ({
        shimPid: process.pid,
        taskPid: this.#containers.get(req.id)?.init.pid ?? 0,
        version: this.version,
      }),
      resizePty: async (req) => {
        // Go's shim ignores a resize of a process without a terminal too.
        await this.#process(req.id, req.execId).io.resize(req.width, req.height);
        return {};
      },
    };
  }

  async create(req: Parameters<NonNullable<TaskService["create"]>>[0]) {
    if (this.#containers.has(req.id)) throw new TtrpcError(`container ${req.id}: already exists`, Code.AlreadyExists);
    if (req.rootfs.length > 0) await mountRootfs(req.bundle, req.rootfs);
    const io = new ProcessIo(req);
    const init = new TaskProcess(req.id, "", io, req.terminal);
    try {
      init.pid = await this.#run(io, req.bundle, req.terminal, (stdio, socket) =>
        this.runc.create(req.id, req.bundle, stdio, socket),
      );
    } catch (e) {
      await unmountRootfs(req.bundle);
      throw e;
    }
    const oom = OomCounter.of(init.pid);
    const c: Container = {
      id: req.id,
      bundle: req.bundle,
      init,
      execs: new Map(),
      specs: new Map(),
      oom,
      oomPoll: oom && setInterval(() => void this.#publishOom(c), OOM_POLL_MS).unref(),
    };
    this.#containers.set(req.id, c);
    this.#watchExit(c, init);
    await this.#publish(topics.TASK_CREATE, TaskCreateSchema, {
      containerId: req.id,
      bundle: req.bundle,
      rootfs: req.rootfs,
      io: { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal },
      checkpoint: req.checkpoint,
      pid: init.pid,
    });
    return { pid: init.pid };
  }

  async start(id: string, execId: string) {
    const c = this.#container(id);
    if (execId !== "") return this.#startExec(c, execId);
    await this.runc.start(id, c.bundle);
    c.init.setStatus(Status.RUNNING);
    await this.#publish(topics.TASK_START, TaskStartSchema, { containerId: id, pid: c.init.pid });
    c.init.markStarted();
    return { pid: c.init.pid };
  }

  /**
   * Runs `runc create` or `runc exec` with the process's stdio, or with a
   * console socket when it has a terminal, and connects its I/O; the pid.
   */
  async #run(
    io: ProcessIo,
    bundle: string,
    terminal: boolean,
    runc: (stdio: StdioOptions, consoleSocket?: string) => Promise<{ pid: number; child: ChildProcess }>,
  ): Promise<number> {
    const consoleSocket = terminal ? await ConsoleSocket.listen(bundle) : undefined;
    try {
      const { pid, child } = await runc(io.stdio(terminal), consoleSocket?.path);
      if (consoleSocket) io.attachConsole(await consoleSocket.receive());
      else io.attach(child);
      return pid;
    } catch (e) {
      io.release();
      io.closeStdin();
      throw TtrpcError.from(e);
    } finally {
      consoleSocket?.close();
    }
  }

  async #startExec(c: Container, execId: string) {
    const p = this.#process(c.id, execId);
    const spec = c.specs.get(execId);
    if (spec === undefined) throw new TtrpcError(`process ${execId}: already started`, Code.FailedPrecondition);
    c.specs.delete(execId);
    const pid = await this.#run(p.io, c.bundle, p.terminal, (stdio, socket) =>
      this.runc.exec(c.id, c.bundle, execId, spec, stdio, socket),
    );
    p.pid = pid;
    p.setStatus(Status.RUNNING);
    this.#watchExit(c, p);
    await this.#publish(topics.TASK_EXEC_STARTED, TaskExecStartedSchema, { containerId: c.id, execId, pid });
    p.markStarted();
    return { pid };
  }

  async exec(req: Parameters<NonNullable<TaskService["exec"]>>[0]) {
    const c = this.#container(req.id);
    if (c.execs.has(req.execId)) throw new TtrpcError(`process ${req.execId}: already exists`, Code.AlreadyExists);
    const specPath = join(c.bundle, `${req.execId}.json`);
    writeFileSync(specPath, req.spec?.value ?? new Uint8Array());
    c.specs.set(req.execId, specPath);
    c.execs.set(req.execId, new TaskProcess(c.id, req.execId, new ProcessIo(req), req.terminal));
    await this.#publish(topics.TASK_EXEC_ADDED, TaskExecAddedSchema, { containerId: c.id, execId: req.execId });
    return {};
  }

  state(id: string, execId: string) {
    const c = this.#container(id);
    const p = this.#process(id, execId);
    const exit = p.exit;
    return {
      id: execId || id,
      bundle: c.bundle,
      pid: p.pid,
      status: p.status,
      ...p.io.paths,
      terminal: p.terminal,
      exitStatus: exit?.status ?? 0,
      exitedAt: exit ? timestampFromDate(exit.exitedAt) : undefined,
      execId,
    };
  }

  async kill(id: string, execId: string, signal: number, all: boolean) {
    const c = this.#container(id);
    const p = this.#process(id, execId);
    if (p.exit) throw new TtrpcError("process already finished", Code.NotFound);
    if (execId === "") await this.runc.kill(id, c.bundle, signal, all);
    else process.kill(p.pid, signal);
    return {};
  }

  async delete(id: string, execId: string) {
    const c = this.#container(id);
    const p = this.#process(id, execId);
    if (p.status !== Status.STOPPED && p.status !== Status.CREATED) {
      throw new TtrpcError(`process ${execId || id} must be stopped before deletion`, Code.FailedPrecondition);
    }
    p.markStarted(); // one created and never started: its exit (runc delete kills it) may now be told
    const exit = p.exit ?? { pid: p.pid, status: 0, exitedAt: new Date() };
    if (execId !== "") {
      c.execs.delete(execId);
    } else {
      clearInterval(c.oomPoll);
      await this.runc.delete(id, c.bundle, p.status === Status.CREATED);
      await unmountRootfs(c.bundle);
      this.#containers.delete(id);
      await this.#publish(topics.TASK_DELETE, TaskDeleteSchema, {
        containerId: id,
        pid: exit.pid,
        exitStatus: exit.status,
        exitedAt: timestampFromDate(exit.exitedAt),
      });
    }
    return { pid: exit.pid, exitStatus: exit.status, exitedAt: timestampFromDate(exit.exitedAt) };
  }

  async #pause(id: string, pause: boolean) {
    const c = this.#container(id);
    if (pause) await this.runc.pause(id, c.bundle);
    else await this.runc.resume(id, c.bundle);
    c.init.setStatus(pause ? Status.PAUSED : Status.RUNNING);
    if (pause) await this.#publish(topics.TASK_PAUSED, TaskPausedSchema, { containerId: id });
    else await this.#publish(topics.TASK_RESUMED, TaskResumedSchema, { containerId: id });
    return {};
  }
}
