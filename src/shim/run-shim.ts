// A shim binary's main: parses the command line containerd wrote and runs
// the action, as Go's shim.Run does. Only Node's modules load up front. Returns the exit code; an error is one
// line on stderr, "<binary>: <message>", and exit code 1.
import { lstatSync, readFileSync, unlinkSync } from "node:fs";
import { basename, join } from "node:path";
import { parseShimArgs, type ShimArgs } from "./flags.js";
import type { DeleteResult, ShimDefinition } from "./shim-definition.js";
import { ShimError } from "./shim-error.js";
import { processIo, type ShimIo } from "./shim-io.js";
import { socketPath } from "./socket-address.js";
import { startCommand } from "./start-command.js";

const SIGKILL = 9;

/** Runs the shim binary; resolves with its exit code (the caller exits with it). */
export async function runShim(
  def: ShimDefinition,
  argv: readonly string[] = process.argv.slice(2),
  io: ShimIo = processIo(),
): Promise<number> {
  try {
    return await dispatch(def, parseShimArgs(argv), io);
  } catch (e) {
    io.writeStderr(`${basename(io.self.at(-1) ?? def.name)}: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}

async function dispatch(def: ShimDefinition, args: ShimArgs, io: ShimIo): Promise<number> {
  if (args.version) {
    io.writeStdout(versionText(def, io));
    return 0;
  }
  if (args.info) {
    const info = def.info?.(await io.readStdin()) ?? { name: def.name, version: versionOf(def) };
    io.writeStdout((await import("./binary-replies.js")).encodeRuntimeInfo(info));
    return 0;
  }
  if (args.namespace === "") throw new ShimError("no-namespace", "shim namespace cannot be empty");
  if (args.id === "") throw new ShimError("no-id", "shim id cannot be empty");
  switch (args.action) {
    case "start":
      await startCommand(args, io);
      return 0;
    case "delete":
      io.writeStdout((await import("./binary-replies.js")).encodeDelete(await runDelete(def, args, io)));
      return 0;
    case "serve":
      // Loaded here, as protobuf is above: `start`, which containerd waits for on every task, needs neither.
      return (await import("./serve-command.js")).serveCommand(def, args, io);
  }
}

const versionOf = (def: ShimDefinition) => ({ version: def.version, revision: def.revision ?? "" });

function versionText(def: ShimDefinition, io: ShimIo): string {
  const name = basename(io.self.at(-1) ?? def.name);
  const lines = [`${name}:`, `  Version:  ${def.version}`, `  Revision: ${def.revision ?? ""}`];
  return `${[...lines, `  Node version: ${process.version}`].join("\n")}\n\n`;
}

async function runDelete(def: ShimDefinition, args: ShimArgs, io: ShimIo): Promise<DeleteResult> {
  const bundle = args.bundle || io.cwd;
  const context = { args, namespace: args.namespace, id: args.id, bundle };
  // Without a cleanup of its own, a dead shim's task is reported killed, as Go's runc shim reports it.
  const result = (await def.delete?.(context)) ?? { pid: 0, exitStatus: 128 + SIGKILL, exitedAt: new Date() };
  removeSocketOf(bundle);
  return result;
}

// The dead server's socket, named in the bundle's address file, goes too (Go's RemoveSocket).
function removeSocketOf(bundle: string): void {
  try {
    const path = socketPath(readFileSync(join(bundle, "address"), "utf8").trim());
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch {
    // no address file, or the socket is already gone
  }
}
