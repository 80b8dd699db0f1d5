// `ttrpc-es call <shim address> containerd.task.v2.Task/Connect` with no
// --proto, against Debian's real containerd-shim-runc-v2 (trixie's containerd
// 1.7.24, unpacked by test/interop/nri/setup.sh): the built-in task protos
// speak to the real shim. The shim is started as containerd starts it
// (`start` in a bundle directory, which daemonizes it and prints its address)
// and stopped with Task/Shutdown through the CLI.

import { execFileSync, spawn } from "node:child_process";
import { createReadStream, readFileSync, mkdtempSync, type ReadStream, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { runCli, useCli } from "../cli/harness.js";
import { ensureNriPeers } from "./nri/nri-peers.js";

const cli = useCli();
const namespace = "ttrpces-cli-test";
const id = `shim-cli-${process.pid}`;
let address = "";
let shimPid = 0;
let bundle = "";
let log: ReadStream | undefined;

beforeAll(async () => {
  const { containerd } = await ensureNriPeers();
  bundle = mkdtempSync(join(tmpdir(), "ttrpc-es-shim-"));
  // The shim reads the bundle's config.json (for its grouping labels) and
  // writes its log to the fifo "log" there, opened when a reader is present.
  writeFileSync(join(bundle, "config.json"), '{"ociVersion":"1.0.2"}');
  execFileSync("mkfifo", [join(bundle, "log")]);
  log = createReadStream(join(bundle, "log")).resume();
  // containerd's address only names the shim's socket here: nothing is published in this test.
  // `start` exits once the daemon it forks serves; the daemon keeps the pipes
  // it inherited, so the exit (not the pipes' end) is what is awaited, and the
  // address is read from the bundle's "address" file the shim writes.
  const start = spawn(
    join(dirname(containerd), "containerd-shim-runc-v2"),
    ["-namespace", namespace, "-id", id, "-address", join(bundle, "containerd.sock"), "start"],
    { cwd: bundle, stdio: "ignore" },
  );
  const code = await new Promise<number | null>((r) => start.once("exit", r));
  expect(code).toBe(0);
  address = readFileSync(join(bundle, "address"), "utf8").trim();
}, 120_000);

afterAll(() => {
  log?.destroy();
  rmSync(bundle, { recursive: true, force: true });
  // Task/Shutdown below ends the shim; should the test fail before it, stop it here.
  if (shimPid > 0) {
    try {
      process.kill(shimPid, "SIGKILL");
    } catch {
      // already gone
    }
  }
});

describe("the CLI against Debian's containerd-shim-runc-v2 1.7", () => {
  test("Task/Connect with no --proto answers with the shim's pid; Task/Shutdown stops it", async () => {
    expect(address).toMatch(/^unix:\/\/\/run\/containerd\/s\/[0-9a-f]{64}$/);
    const r = await runCli(cli(), [
      "call",
      address,
      "containerd.task.v2.Task/Connect",
      "--namespace",
      namespace,
      "-d",
      JSON.stringify({ id }),
    ]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const answer = JSON.parse(r.stdout) as { shimPid: number };
    expect(Object.keys(answer)).toEqual(["shimPid"]);
    shimPid = answer.shimPid;
    // The pid is a live process: the shim itself.
    expect(() => process.kill(shimPid, 0)).not.toThrow();

    const down = await runCli(cli(), [
      "call",
      address,
      "containerd.task.v2.Task/Shutdown",
      "--namespace",
      namespace,
      "-d",
      JSON.stringify({ id, now: true }),
    ]);
    // The shim exits as it answers, so the answer may be lost with the connection.
    expect([0, 64 + 14], down.stderr).toContain(down.status);
  });
});
