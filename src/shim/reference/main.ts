#!/usr/bin/env node
// containerd-shim-ttrpces-v2: the reference shim of ttrpc-es/shim. It runs
// containers with runc, as containerd-shim-runc-v2 does, in a few hundred
// lines: docs/shim.md walks through it. containerd runs it as
// `ctr run --runtime /abs/path/containerd-shim-ttrpces-v2 ...`, or as runtime
// io.containerd.ttrpces.v2 when it is on containerd's PATH.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { runShim } from "../run-shim.js";
import type { DeleteContext, ShimDefinition } from "../shim-definition.js";
import { unmountRootfs } from "./rootfs.js";
import { Runc } from "./runc.js";

const VERSION = "0.2.0";
const SIGKILL = 9;

/** runc's state root for a namespace, where Go's runc shim keeps it. */
const runcFor = (namespace: string) => new Runc(join("/run/containerd/runc", namespace));

// `delete`: the shim is gone; force-delete the container and unmount its rootfs.
async function cleanup(ctx: DeleteContext) {
  await runcFor(ctx.namespace)
    .delete(ctx.id, ctx.bundle, true)
    .catch(() => undefined); // already gone
  await unmountRootfs(ctx.bundle);
  let pid = 0;
  try {
    pid = Number.parseInt(readFileSync(join(ctx.bundle, "init.pid"), "utf8"), 10) || 0;
  } catch {
    // never created
  }
  return { pid, exitStatus: 128 + SIGKILL, exitedAt: new Date() };
}

/** The reference shim. */
export const referenceShim: ShimDefinition = {
  name: "io.containerd.ttrpces.v2",
  version: VERSION,
  // Loaded by the server only: `start`, which containerd waits for, skips it.
  task: async (ctx) => {
    const { RuncTaskService } = await import("./runc-task-service.js");
    return new RuncTaskService(ctx, runcFor(ctx.namespace), VERSION).service();
  },
  delete: cleanup,
};

// Exit at once, as Go's shim does: FIFO copies and runc pipes may still be open.
process.exit(await runShim(referenceShim));
