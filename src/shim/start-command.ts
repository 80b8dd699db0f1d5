// `shim start`: work out the socket, spawn the long-lived server detached in
// its own session (setsid), wait until it listens, write the address into
// the bundle's "address" file (where containerd 1.x looks when it reconnects
// after a restart) and print it in the format containerd asked for. Only
// Node's modules load here unless stdin holds something to decode: containerd
// waits for `start` on every task, and protobuf is most of a shim's load time.
import { spawn } from "node:child_process";
import { renameSync, writeFileSync } from "node:fs";
import { Socket } from "node:net";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import type { ShimArgs } from "./flags.js";
import { ShimError } from "./shim-error.js";
import type { ShimIo } from "./shim-io.js";
import { DEFAULT_SOCKET_DIR, shimSocketAddress, socketPath } from "./socket-address.js";
import { legacyStartReply, NO_START_INPUT, type StartInput, taskApiVersion } from "./start-reply.js";

/** The line the server writes on fd 3 once it listens. */
export const READY = "ok";

/** Runs `start`; resolves once the reply is printed. */
export async function startCommand(args: ShimArgs, io: ShimIo): Promise<void> {
  const stdin = await io.readStdin();
  const bootstrap = stdin.length > 0 ? await import("./bootstrap.js") : undefined;
  const input = bootstrap?.readStartInput(stdin, args.id, args.namespace) ?? NO_START_INPUT;
  const where = startTarget(args, input, io.env);
  const address = shimSocketAddress(where.socketDir, where.grpcAddress, args.namespace, args.id);
  if (!(await isServing(socketPath(address)))) await spawnServer(args, io, { ...where, address });
  writeAddressFile(join(io.cwd, "address"), address);
  const maxVersion = io.env.MAX_SHIM_VERSION;
  const reply = { address, version: taskApiVersion(input, maxVersion) };
  io.writeStdout(bootstrap?.encodeStartReply(input, reply, maxVersion) ?? legacyStartReply(reply, maxVersion));
}

interface Target {
  socketDir: string;
  grpcAddress: string;
  ttrpcAddress: string;
}

// The bootstrap params win over the flags and environment they replace.
function startTarget(args: ShimArgs, input: StartInput, env: ShimIo["env"]): Target {
  const p = input.format === "bootstrap" ? input.params : undefined;
  return {
    socketDir: p?.socketDir || DEFAULT_SOCKET_DIR,
    grpcAddress: p?.containerdGrpcAddress || args.address,
    ttrpcAddress: p?.containerdTtrpcAddress || env.TTRPC_ADDRESS || "",
  };
}

// A server already at the address (a grouped task's) is reused, as Go does.
function isServing(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = new Socket();
    s.setTimeout(1000, () => s.destroy());
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
    s.once("close", () => resolve(false)); // the timeout
    s.connect({ path });
  });
}

async function spawnServer(args: ShimArgs, io: ShimIo, t: Target & { address: string }): Promise<void> {
  const [command, ...selfArgs] = io.self;
  const flags = ["-namespace", args.namespace, "-id", args.id, "-address", t.grpcAddress];
  flags.push("-socket", socketPath(t.address), ...(args.debug ? ["-debug"] : []));
  const child = spawn(command!, [...selfArgs, ...flags], {
    cwd: io.cwd,
    detached: true,
    stdio: ["ignore", "ignore", "ignore", "pipe"],
    env: { ...io.env, TTRPC_ADDRESS: t.ttrpcAddress },
  });
  const exited = new Promise<string>((resolve) =>
    child.once("exit", (code, sig) => resolve(`exited (${sig ?? code})`)),
  );
  const spawnFailed = new Promise<string>((resolve) => child.once("error", (e) => resolve(e.message)));
  const ready = readToEnd(child.stdio[3] as Readable);
  const said = await Promise.race([ready, spawnFailed]);
  if (said.trim() !== READY) {
    child.kill("SIGKILL");
    const why = said.trim() || (await exited);
    throw new ShimError("start-failed", `the shim server did not start: ${why}`);
  }
  child.unref();
}

async function readToEnd(stream: Readable): Promise<string> {
  let text = "";
  for await (const c of stream) text += String(c);
  return text;
}

// Written beside, then renamed: containerd never reads half an address.
function writeAddressFile(path: string, address: string): void {
  const tmp = join(dirname(path), ".address");
  writeFileSync(tmp, address, { mode: 0o644 });
  renameSync(tmp, path);
}
