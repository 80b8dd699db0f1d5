// The reference shim (containerd-shim-ttrpces-v2, on ttrpc-es/shim) under the
// real containerd 1.6.20, 1.7.24 and 2.1.9 with Debian's runc, driven by ctr
// as users drive it: `ctr run --rm` with an exit code, `ctr run -d` then exec,
// kill, ls and delete, the task events `ctr events` prints, /tasks/oom for a
// container the OOM killer takes, and a shim killed with SIGKILL cleaned up by
// containerd through the shim's `delete`.
import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  buildReferenceShim,
  type Containerd,
  ensureContainerd,
  lineMatching,
  NAMESPACE,
  startContainerd,
  VERSIONS,
} from "./containerd-run.js";
import { gone, pidsWhere } from "../../shim/processes.js";

const IMAGE = "localhost/ttrpc-es-shim-busybox:1";
const SH = ["/bin/busybox", "sh", "-c"];
let shim: string;
let cleanupShim = () => {};

beforeAll(async () => {
  await ensureContainerd();
  ({ shim, cleanup: cleanupShim } = buildReferenceShim());
}, 300_000);
afterAll(() => cleanupShim());

// The pid of the shim server serving task `id`: its command line names it.
function shimPid(id: string): number {
  const [pid] = pidsWhere(
    (argv) =>
      argv.some((a) => a.endsWith("reference/main.js")) &&
      argv[argv.indexOf("-id") + 1] === id &&
      argv.includes("-socket"),
  );
  if (pid === undefined) throw new Error(`no shim server for ${id}`);
  return pid;
}

// Whether runc still knows container `id` (the reference shim keeps runc's state where Go's shim does).
function runcKnows(id: string): boolean {
  return execFileSync("runc", ["--root", `/run/containerd/runc/${NAMESPACE}`, "list", "-q"], { encoding: "utf8" })
    .split("\n")
    .includes(id);
}

describe.each(VERSIONS)("containerd %s runs the reference shim", (version) => {
  let ctd: Containerd;
  beforeAll(async () => {
    ctd = await startContainerd(version);
    await ctd.importImage(IMAGE);
  }, 120_000);
  afterAll(async () => ctd?.stop());

  it("ctr run --rm prints the container's output and exits with its status; ctr events shows the task events", async () => {
    const events = ctd.spawnCtr(["events"]);
    try {
      const id = `rm-${version.replace(".", "")}`;
      const r = await ctd.ctr(["run", "--rm", "--runtime", shim, IMAGE, id, ...SH, "echo hi; exit 3"]);
      expect({ code: r.code, stdout: r.stdout }, r.stderr + ctd.log().slice(-4000)).toEqual({
        code: 3,
        stdout: "hi\n",
      });
      const line = (topic: string) => lineMatching(events, new RegExp(`${NAMESPACE} /tasks/${topic} .*"${id}"`));
      const create = await line("create");
      expect(create).toContain(`"bundle":`);
      const start = await line("start");
      expect(start).toMatch(/"pid":\d+/);
      const exit = await line("exit");
      expect(exit).toContain('"exit_status":3');
      expect(exit).toMatch(/"id":"rm-/);
      const del = await line("delete");
      expect(del).toContain('"exit_status":3');
      // ctr events prints them in the order containerd published them
      const out = events.output();
      expect(out.indexOf(create)).toBeLessThan(out.indexOf(start));
      expect(out.indexOf(start)).toBeLessThan(out.indexOf(exit));
      expect(out.indexOf(exit)).toBeLessThan(out.indexOf(del));
    } finally {
      events.child.kill();
    }
  });

  it("ctr run -d, then task exec, ls, kill and delete", async () => {
    const id = `d-${version.replace(".", "")}`;
    const events = ctd.spawnCtr(["events"]);
    try {
      const run = await ctd.ctr(["run", "-d", "--runtime", shim, IMAGE, id, "/bin/busybox", "sleep", "600"]);
      expect(run.code, run.stderr).toBe(0);
      const server = shimPid(id);
      const exec = await ctd.ctr(["task", "exec", "--exec-id", "e1", id, ...SH, "echo from-exec; exit 5"]);
      expect({ code: exec.code, stdout: exec.stdout }, exec.stderr).toEqual({ code: 5, stdout: "from-exec\n" });
      const ls = await ctd.ctr(["task", "ls"]);
      expect(ls.stdout).toMatch(new RegExp(`${id}\\s+\\d+\\s+RUNNING`));
      const kill = await ctd.ctr(["task", "kill", "-s", "SIGKILL", id]);
      expect(kill.code, kill.stderr).toBe(0);
      await lineMatching(events, new RegExp(`/tasks/exit .*"container_id":"${id}","id":"${id}".*"exit_status":137`));
      const stopped = await ctd.ctr(["task", "ls"]);
      expect(stopped.stdout).toMatch(new RegExp(`${id}\\s+\\d+\\s+STOPPED`));
      const del = await ctd.ctr(["task", "delete", id]);
      expect(del.code, del.stderr).toBe(0);
      expect((await ctd.ctr(["task", "ls"])).stdout).not.toContain(id);
      expect((await ctd.ctr(["containers", "rm", id])).code).toBe(0);
      // containerd called Shutdown after the last task's Delete: the shim server exits
      await gone(server);
      expect(runcKnows(id)).toBe(false);
    } finally {
      events.child.kill();
    }
  });

  it("ctr run -t: the container gets a terminal, its output and input go through it, and its exit status comes back", async () => {
    const id = `t-${version.replace(".", "")}`;
    const script = "echo ready; read x; echo got:$x; /bin/busybox tty; exit 4";
    const r = await ctd.ctrInTerminal(["run", "-t", "--rm", "--runtime", shim, IMAGE, id, ...SH, script], {
      waitFor: "ready",
      text: "hello\r",
    });
    expect(r.output, ctd.log().slice(-4000)).toMatch(/got:hello\r+\n\/dev\/pts\/\d+\r+\n/);
    expect(r.code, r.output).toBe(4);
  });

  it("ctr task exec -t runs a process with a terminal in a running container", async () => {
    const id = `xt-${version.replace(".", "")}`;
    const run = await ctd.ctr(["run", "-d", "--runtime", shim, IMAGE, id, "/bin/busybox", "sleep", "600"]);
    expect(run.code, run.stderr).toBe(0);
    try {
      const script = "echo ready; read x; echo exec:$x; /bin/busybox tty; exit 6";
      const r = await ctd.ctrInTerminal(["task", "exec", "-t", "--exec-id", "e1", id, ...SH, script], {
        waitFor: "ready",
        text: "there\r",
      });
      expect(r.output).toMatch(/exec:there\r+\n\/dev\/pts\/\d+\r+\n/);
      expect(r.code, r.output).toBe(6);
    } finally {
      await ctd.ctr(["task", "kill", "-s", "SIGKILL", id]);
      await ctd.ctr(["task", "delete", "--force", id]);
      await ctd.ctr(["containers", "rm", id]);
    }
  });

  // The shell holds a 64 MB string under a 16 MiB limit (the machine has no
  // swap), so the killer takes the container's init. Go's runc shim runs the
  // same container first: the case proves the kernel acts here.
  it.each([
    ["io.containerd.runc.v2", "go"],
    ["the reference shim", "es"],
  ])("a container the OOM killer takes under %s: /tasks/oom, then /tasks/exit 137", async (_name, which) => {
    const id = `oom-${which}-${version.replace(".", "")}`;
    const runtime = which === "go" ? "io.containerd.runc.v2" : shim;
    const events = ctd.spawnCtr(["events"]);
    try {
      const hog = "a=$(/bin/busybox head -c 64000000 /dev/zero | /bin/busybox tr '\\000' x); echo survived";
      const r = await ctd.ctr([
        "run",
        "--rm",
        "--memory-limit",
        String(16 << 20),
        "--runtime",
        runtime,
        IMAGE,
        id,
        ...SH,
        hog,
      ]);
      expect({ code: r.code, stdout: r.stdout }, r.stderr).toEqual({ code: 137, stdout: "" });
      const oom = await lineMatching(events, new RegExp(`${NAMESPACE} /tasks/oom .*"container_id":"${id}"`));
      const exit = await lineMatching(events, new RegExp(`${NAMESPACE} /tasks/exit .*"container_id":"${id}"`));
      expect(exit).toContain('"exit_status":137');
      const out = events.output();
      expect(out.indexOf(oom)).toBeLessThan(out.indexOf(exit));
    } finally {
      events.child.kill();
    }
  });

  it("a shim killed with SIGKILL is cleaned up by containerd through the shim's delete", async () => {
    const id = `k-${version.replace(".", "")}`;
    const events = ctd.spawnCtr(["events"]);
    try {
      const run = await ctd.ctr(["run", "-d", "--runtime", shim, IMAGE, id, "/bin/busybox", "sleep", "600"]);
      expect(run.code, run.stderr).toBe(0);
      expect(runcKnows(id)).toBe(true);
      process.kill(shimPid(id), "SIGKILL");
      // containerd sees the connection end, runs `<shim> delete`, and reports the task killed
      const exit = await lineMatching(events, new RegExp(`/tasks/exit .*"container_id":"${id}"`));
      expect(exit).toContain('"exit_status":137');
      expect((await ctd.ctr(["task", "ls"])).stdout).not.toContain(id);
      // the shim's delete force-deleted the container with runc: its init is gone too
      expect(runcKnows(id)).toBe(false);
      expect((await ctd.ctr(["containers", "rm", id])).code).toBe(0);
    } finally {
      events.child.kill();
    }
  });
});
