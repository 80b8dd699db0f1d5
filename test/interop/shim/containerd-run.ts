// The real containerd, for the shim interop tests: one of the three Debian
// builds setup.sh unpacks, started as root in a fresh directory with its own
// root, state and sockets (CRI off: ctr needs none of it), and `ctr` against
// it. The reference shim is compiled once per file and run by containerd
// through a launcher at an absolute path, as `--runtime /abs/path` users do.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { compileForTest } from "../../cli/harness.js";
import { runSetupScript } from "../go-peer.js";
import { buildBusyboxImage } from "../nri/oci-image.js";

const here = fileURLToPath(new URL("./", import.meta.url));

/** The containerd versions setup.sh unpacks, by the directory it unpacks each into. */
export const VERSIONS = ["1.6", "1.7", "2.1"] as const;
export type Version = (typeof VERSIONS)[number];

let setup: Promise<void> | undefined;
/** Runs setup.sh once per process; a failure fails the suite (never skips it). */
export function ensureContainerd(): Promise<void> {
  setup ??= runSetupScript(`${here}setup.sh`);
  return setup;
}

/** Compiles the reference shim and writes its launcher; returns the launcher's path and a cleanup. */
export function buildReferenceShim(): { shim: string; cleanup: () => void } {
  const { out, cleanup } = compileForTest(["src/shim/reference/main.ts"], ["src/shim/reference/main.js"]);
  const shim = join(out, "containerd-shim-ttrpces-v2");
  writeFileSync(shim, `#!/bin/sh\nexec "${process.execPath}" "${join(out, "src/shim/reference/main.js")}" "$@"\n`);
  chmodSync(shim, 0o755);
  return { shim, cleanup };
}

/** A running containerd and `ctr` against it. */
export interface Containerd {
  readonly dir: string;
  readonly address: string;
  /** Runs ctr with `args` in namespace "shimtest"; resolves with its exit code and output. */
  ctr(args: string[], options?: { stdin?: string }): Promise<{ code: number; stdout: string; stderr: string }>;
  /**
   * Runs ctr in a terminal of its own (util-linux `script`), for `run -t`:
   * `input` is typed once `waitFor` has appeared in what the terminal shows.
   */
  ctrInTerminal(args: string[], input: { waitFor: string; text: string }): Promise<{ code: number; output: string }>;
  /** Starts a long-running ctr (e.g. `events`); its stdout is collected. */
  spawnCtr(args: string[]): { child: ChildProcess; output: () => string };
  /** Imports a busybox-only image as `name`. */
  importImage(name: string): Promise<void>;
  /** Stops containerd (SIGTERM) and removes its directory. */
  stop(): Promise<void>;
  log(): string;
}

export const NAMESPACE = "shimtest";

/** Starts containerd `version`; resolves once it has booted. */
export async function startContainerd(version: Version): Promise<Containerd> {
  if (process.getuid?.() !== 0) throw new Error("the shim interop test runs containerd, which needs root");
  const bin = join(here, `.build/containerd-${version}/usr/bin`);
  const dir = mkdtempSync("/tmp/ttrpc-es-shim-");
  const address = join(dir, "c.sock");
  writeFileSync(
    join(dir, "config.toml"),
    `version = 2
root = "${dir}/root"
state = "${dir}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "${address}"
[ttrpc]
  address = "${address}.ttrpc"
`,
  );
  // containerd runs the launcher, which finds this node by absolute path.
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? ""}` };
  const child = spawn(join(bin, "containerd"), ["--config", join(dir, "config.toml")], {
    stdio: ["ignore", "ignore", "pipe"],
    env,
  });
  let log = "";
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.stderr!.setEncoding("utf8").on("data", (c: string) => {
      log = (log + c).slice(-(512 << 10));
      if (log.includes("containerd successfully booted")) resolve();
    });
    void exited.then(() => reject(new Error(`containerd ${version} exited before booting:\n${log}`)));
  });
  const ctrArgs = (args: string[]) => ["--address", address, "-n", NAMESPACE, ...args];
  const ctr: Containerd["ctr"] = (args, options = {}) =>
    new Promise((resolve) => {
      const p = execFile(join(bin, "ctr"), ctrArgs(args), { env }, (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      });
      p.stdin?.end(options.stdin ?? "");
    });
  const ctrInTerminal: Containerd["ctrInTerminal"] = (args, input) =>
    new Promise((resolve) => {
      const command = [join(bin, "ctr"), ...ctrArgs(args)].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(" ");
      const p = spawn("script", ["-qec", command, "/dev/null"], { env, stdio: ["pipe", "pipe", "pipe"] });
      let output = "";
      let typed = false;
      p.stdout!.setEncoding("utf8").on("data", (s: string) => {
        output += s;
        if (!typed && output.includes(input.waitFor)) {
          typed = true;
          p.stdin!.write(input.text);
        }
      });
      p.once("exit", (code) => resolve({ code: code ?? -1, output }));
    });
  return {
    dir,
    address,
    ctr,
    ctrInTerminal,
    spawnCtr(args) {
      const c = spawn(join(bin, "ctr"), ctrArgs(args), { stdio: ["ignore", "pipe", "ignore"], env });
      let output = "";
      c.stdout!.setEncoding("utf8").on("data", (s: string) => {
        output += s;
      });
      return { child: c, output: () => output };
    },
    async importImage(name) {
      const imageDir = join(dir, "image");
      mkdirSync(imageDir);
      const archive = buildBusyboxImage(imageDir, name, ["/bin/busybox", "sh"]);
      const r = await ctr(["images", "import", archive]);
      if (r.code !== 0) throw new Error(`ctr images import failed: ${r.stderr}`);
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
      // A test that failed half way may leave mounts under the state directory.
      await new Promise<void>((resolve) => execFile("umount", ["-R", "-l", dir], () => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
    log: () => log,
  };
}

/** Resolves once `output()` holds a line matching `pattern`, checked whenever the stream sends more. */
export function lineMatching(stream: { child: ChildProcess; output: () => string }, pattern: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const line = stream
        .output()
        .split("\n")
        .find((l) => pattern.test(l));
      if (line === undefined) return false;
      stream.child.stdout!.off("data", onData);
      resolve(line);
      return true;
    };
    const onData = () => void check();
    if (check()) return;
    stream.child.stdout!.on("data", onData);
    stream.child.once("exit", () => {
      if (!check()) reject(new Error(`ctr exited without a line matching ${pattern}:\n${stream.output()}`));
    });
  });
}
