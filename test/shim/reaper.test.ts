// Reaping a process that is not this one's child, as a shim must reap the
// container init runc forks. The test's own process becomes child subreaper
// (each test file runs in its own worker process); a shell starts a
// background subshell and exits, so the subshell is orphaned and the kernel
// reparents it here. The subshell waits on a FIFO, so the test decides when
// it exits: no timing involved.
import { spawn } from "node:child_process";
import { execFileSync } from "node:child_process";
import { closeSync, constants, openSync, writeSync } from "node:fs";
import { join } from "node:path";
import { Reaper, ShimError } from "ttrpc-es/shim";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "../common.js";

let reaper: Reaper;
beforeAll(async () => {
  reaper = await Reaper.start();
});
afterAll(() => reaper.stop());

/** Starts an orphan that exits with `code` once a line arrives on its FIFO; resolves with its pid and the FIFO. */
async function orphan(script: string): Promise<{ pid: number; fifo: string }> {
  const fifo = join(tempDir(), "go");
  execFileSync("mkfifo", [fifo]);
  const sh = spawn("sh", ["-c", `(read x < ${fifo}; ${script}) >/dev/null 2>&1 & echo $!`], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  sh.stdout.setEncoding("utf8").on("data", (s: string) => {
    out += s;
  });
  // Once the shell is gone, its background subshell is an orphan: this process's child now.
  await new Promise((resolve) => sh.once("close", resolve));
  return { pid: Number(out.trim()), fifo };
}

function release(fifo: string): void {
  const fd = openSync(fifo, constants.O_WRONLY);
  writeSync(fd, "go\n");
  closeSync(fd);
}

describe("Reaper", () => {
  it("reaps an orphan reparented to this process and reads its exit code", async () => {
    const { pid, fifo } = await orphan("exit 7");
    const exited = reaper.wait(pid);
    release(fifo);
    await expect(exited).resolves.toMatchObject({ pid, status: 7 });
    // reaped: no zombie is left behind
    expect(() => process.kill(pid, 0)).toThrow();
  });

  it("reports a death by signal as 128 + the signal, as containerd does", async () => {
    const { pid, fifo } = await orphan("kill -9 $(sh -c 'echo $PPID')");
    const exited = reaper.wait(pid);
    release(fifo);
    await expect(exited).resolves.toMatchObject({ pid, status: 137 });
  });

  it("reaps an orphan that exited before anyone waited for it", async () => {
    const { pid, fifo } = await orphan("exit 4");
    const signalled = new Promise((resolve) => process.once("SIGCHLD", resolve));
    release(fifo);
    // Its exit, and the SIGCHLD it sent, are over before anyone waits.
    await signalled;
    // The zombie stays until waited for; the wait finds it at once.
    await expect(reaper.wait(pid)).resolves.toMatchObject({ pid, status: 4 });
  });

  it("refuses a process that is not this one's child", async () => {
    const err = await reaper.wait(1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ShimError);
    expect((err as ShimError).code).toBe("not-a-child");
  });
});
