// Helpers for interop tests that need a real Go ttrpc peer. The peers are built
// from Debian packages by test/interop/go/setup.sh; see the scenario list in
// test/interop/go/peerkit/unary.go and test/interop/go/peer/main.go.
import { execFile, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const goDir = fileURLToPath(new URL("./go/", import.meta.url));
const binDir = `${goDir}.build/bin/`;

/** Paths of the Go peer binaries. */
export interface GoPeers {
  /** Go ttrpc 1.2.4: unary and streaming, server and client scenarios. */
  peer: string;
  /** Debian 12's Go ttrpc 1.1.1: unary only. */
  oldPeer: string;
  /** containerd typeurl v2: encode, encode-proto, decode. */
  typeurlPeer: string;
}

/** A running Go server. */
export interface GoServer {
  /** Stops the server (SIGTERM) and waits for it to exit. */
  close(): Promise<void>;
  /** What the server wrote on stderr so far (Go ttrpc logs there), last 64 KiB. */
  stderr(): string;
}

let setup: Promise<GoPeers> | undefined;

/**
 * Builds the Go peers once per process (setup.sh is fast when nothing changed,
 * and serializes concurrent runs). Rejects with setup's stderr on failure: a
 * missing peer must fail the suite, never skip it.
 */
export function ensureGoPeer(): Promise<GoPeers> {
  setup ??= new Promise((resolve, reject) => {
    execFile("bash", [`${goDir}setup.sh`], { maxBuffer: 16 << 20 }, (err, _stdout, stderr) => {
      if (err) {
        reject(new Error(`test/interop/go/setup.sh failed (${err.message.split("\n")[0]}):\n${stderr}`));
        return;
      }
      resolve({
        peer: `${binDir}ttrpc-peer`,
        oldPeer: `${binDir}ttrpc-peer-old`,
        typeurlPeer: `${binDir}typeurl-peer`,
      });
    });
  });
  return setup;
}

const readyTimeoutMs = 30_000;
const stderrLimit = 64 << 10;

/**
 * Starts `bin server --socket socketPath` and resolves once it prints READY.
 * The server's stdin stays open: the peer exits when it closes, so a crashed
 * test process does not leave servers behind.
 */
export function startGoServer(bin: string, socketPath: string): Promise<GoServer> {
  const child = spawn(bin, ["server", "--socket", socketPath], { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  // Both pipes are read for the server's whole life: a full pipe would block it.
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-stderrLimit);
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const server: GoServer = {
    async close() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
    stderr: () => stderr,
  };
  return new Promise((resolve, reject) => {
    let stdout = "";
    let ready = false;
    const fail = (why: string) => {
      if (ready) return;
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(new Error(`${bin} server ${why}; stderr:\n${stderr}`));
    };
    const timer = setTimeout(() => fail(`did not print READY within ${readyTimeoutMs} ms`), readyTimeoutMs);
    child.once("error", (err) => fail(`could not start: ${err.message}`));
    child.once("exit", (code, signal) => fail(`exited before READY (code ${code}, signal ${signal})`));
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      if (ready) return;
      stdout += chunk;
      if (stdout.split("\n").includes("READY")) {
        ready = true;
        clearTimeout(timer);
        resolve(server);
      }
    });
  });
}

/**
 * Runs `bin client --socket socketPath --scenario scenario ...extraArgs` and
 * returns its one JSON line. RPC errors are part of the result
 * (`{ ok: false, code, message, kind, ... }`); a non-zero exit is a harness
 * failure and rejects with the peer's stderr.
 */
// `any`: each scenario reports its own fields.
export async function runGoClient(bin: string, socketPath: string, scenario: string, extraArgs: string[] = []): Promise<any> {
  const stdout = await run(bin, ["client", "--socket", socketPath, "--scenario", scenario, ...extraArgs]);
  return lastJsonLine(stdout, `${bin} client --scenario ${scenario}`);
}

/**
 * Runs the typeurl peer: `encode` / `encode-proto` return
 * `{ type_url, value_base64 }`; `decode` takes that shape as input and returns
 * the decoded value as Go's encoding/json writes it.
 */
// `any`: the decoded value is whatever Go decoded.
export async function runTypeurlPeer(bin: string, mode: "encode" | "encode-proto" | "decode", input?: unknown): Promise<any> {
  const stdout = await run(bin, [mode], input === undefined ? undefined : JSON.stringify(input));
  return lastJsonLine(stdout, `${bin} ${mode}`);
}

function run(bin: string, args: string[], stdin?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(bin, args, { maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${bin} ${args.join(" ")} failed (${err.message.split("\n")[0]}):\n${stderr}`));
      else resolve(stdout);
    });
    // A peer that exits without reading its stdin makes this write fail with
    // EPIPE; its exit status and output are what count.
    child.stdin?.on("error", () => {});
    child.stdin?.end(stdin ?? "");
  });
}

function lastJsonLine(stdout: string, what: string): unknown {
  const line = stdout.trim().split("\n").pop() ?? "";
  try {
    return JSON.parse(line);
  } catch {
    throw new Error(`${what} printed no JSON line: ${JSON.stringify(stdout)}`);
  }
}
