// A real containerd daemon for interop tests: Debian's binary, started as
// root in a fresh directory with its own root, state and sockets (gRPC and
// ttrpc) and NRI enabled, stopped and removed after the test.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { onTestFinished } from "vitest";

export interface Containerd {
  dir: string;
  nriSocket: string;
  grpcSocket: string;
  ttrpcSocket: string;
  /** SIGTERM, then resolves with the exit code. */
  stop(): Promise<number | null>;
  log(): string;
}

/** Starts containerd in a fresh directory; resolves once it has booted (its own log line says so). */
export async function startContainerd(containerd: string, extraConfig = ""): Promise<Containerd> {
  if (process.getuid?.() !== 0) throw new Error("the containerd test runs containerd, which needs root");
  // Short: unix socket paths are limited to 108 bytes.
  const dir = mkdtempSync("/tmp/ttrpc-es-ctd-");
  for (const d of ["plugins", "conf.d"]) mkdirSync(join(dir, d));
  const nriSocket = join(dir, "nri.sock");
  writeFileSync(
    join(dir, "config.toml"),
    `version = 2
root = "${dir}/root"
state = "${dir}/state"
[grpc]
  address = "${dir}/containerd.sock"
[ttrpc]
  address = "${dir}/containerd.sock.ttrpc"
[plugins."io.containerd.nri.v1.nri"]
  disable = false
  disable_connections = false
  socket_path = "${nriSocket}"
  plugin_path = "${dir}/plugins"
  plugin_config_path = "${dir}/conf.d"
  plugin_registration_timeout = "5s"
  plugin_request_timeout = "2s"
${extraConfig}`,
  );
  const child: ChildProcess = spawn(containerd, ["--config", join(dir, "config.toml")], {
    stdio: ["ignore", "ignore", "pipe"],
    // containerd finds its shim (containerd-shim-runc-v2) on PATH.
    env: { ...process.env, PATH: `${dirname(containerd)}:${process.env.PATH ?? ""}` },
  });
  let log = "";
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    return exited;
  };
  onTestFinished(async () => {
    await stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await new Promise<void>((resolve, reject) => {
    child.stderr!.setEncoding("utf8").on("data", (c: string) => {
      log = (log + c).slice(-(256 << 10));
      if (log.includes("containerd successfully booted")) resolve();
    });
    exited.then((code) => reject(new Error(`containerd exited (${code}) before booting:\n${log}`)));
  });
  return {
    dir,
    nriSocket,
    grpcSocket: join(dir, "containerd.sock"),
    ttrpcSocket: join(dir, "containerd.sock.ttrpc"),
    stop,
    log: () => log,
  };
}
