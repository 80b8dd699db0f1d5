// The long-lived shim server: what `start` spawns. It logs to the bundle's
// fifo, becomes child subreaper, serves Task v2 and v3 and the definition's
// other services on the socket `start` named, says "ok" on fd 3 once it
// listens, and runs until Shutdown finds no task left, or SIGTERM/SIGINT.
import { closeSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { createServer, type Server } from "../server.js";
import type { ShimArgs } from "./flags.js";
import { EventPublisher } from "./publisher.js";
import { Reaper } from "./reaper.js";
import type { ShimContext, ShimDefinition } from "./shim-definition.js";
import type { ShimIo } from "./shim-io.js";
import { ShimLog } from "./shim-log.js";
import { makeSocketDir } from "./socket-address.js";
import { READY } from "./start-command.js";
import { registerTaskService, TaskLifecycle } from "./task-service.js";

const READY_FD = 3;
const SHUTDOWN_TIMEOUT_MS = 5000;

/** Serves until the shim shuts down; resolves with the exit code. */
export async function serveCommand(def: ShimDefinition, args: ShimArgs, io: ShimIo): Promise<number> {
  const log = ShimLog.open("log", args.debug);
  try {
    const ended = await serve(def, args, io, log);
    return await ended;
  } catch (e) {
    tellStart(String(e instanceof Error ? e.message : e));
    log.log("error", "shim server failed", { error: String(e) });
    return 1;
  } finally {
    log.close();
  }
}

async function serve(def: ShimDefinition, args: ShimArgs, io: ShimIo, log: ShimLog): Promise<Promise<number>> {
  const reaper = def.subreaper === false ? undefined : await Reaper.start();
  const publisher = new EventPublisher({
    address: io.env.TTRPC_ADDRESS ?? "",
    namespace: args.namespace,
    onError: (env, e) => log.log("warning", "forward event", { topic: env.topic, error: String(e) }),
    onDrop: (env) => log.log("error", "evicting event from queue because of retry count", { topic: env.topic }),
  });
  const server = createServer();
  let done!: (code: number) => void;
  const ended = new Promise<number>((resolve) => {
    done = resolve;
  });
  let stopping = false;
  const shutdown = () => {
    if (stopping) return;
    stopping = true;
    log.log("info", "shim shutting down", { tasks: lifecycle.liveTasks.size });
    void stop(server, publisher, reaper, def).then(() => done(0));
  };
  const context: ShimContext = {
    args,
    namespace: args.namespace,
    id: args.id,
    bundle: io.cwd,
    publisher,
    reaper,
    log,
    server,
    shutdown,
  };
  const lifecycle = new TaskLifecycle(shutdown);
  registerTaskService(server, lifecycle.wrap(await def.task(context)));
  for (const s of def.services?.(context) ?? []) s.register(server);
  makeSocketDir(dirname(args.socket));
  await server.listen(`unix:${args.socket}`, { socketMode: 0o600 });
  for (const sig of ["SIGTERM", "SIGINT"] as const) process.once(sig, shutdown);
  log.log("info", "shim serving", { namespace: args.namespace, id: args.id, pid: process.pid });
  tellStart(READY);
  return ended;
}

async function stop(server: Server, publisher: EventPublisher, reaper: Reaper | undefined, def: ShimDefinition) {
  await server.shutdown({ timeoutMs: SHUTDOWN_TIMEOUT_MS });
  await def.close?.();
  // As Go's shim: events still queued for retry are dropped with the connection.
  publisher.close();
  reaper?.stop();
}

// fd 3 is the pipe `start` reads; run by hand, there is none.
function tellStart(text: string): void {
  try {
    writeSync(READY_FD, `${text}\n`);
    closeSync(READY_FD);
  } catch {
    // not started by `start`
  }
}
