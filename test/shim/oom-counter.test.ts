// The reference shim's OOM counter: which cgroup file it reads for a process
// (v1 memory hierarchy, v2 unified), and that it reports each rise of the
// kernel's oom_kill count once. The kernel's files are stood in for by files
// in a temporary root, since a test cannot make the OOM killer act on demand
// here; test/interop/shim/ctr-run.test.ts has a real container OOM-killed.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { OomCounter, oomCountFile } from "../../src/shim/reference/oom-counter.js";

let root: string;
afterEach(() => rmSync(root, { recursive: true, force: true }));
const makeRoot = () => (root = mkdtempSync(join(tmpdir(), "oom-counter-")));

describe("oomCountFile", () => {
  it("reads cgroup v1's memory hierarchy when the process has one", () => {
    makeRoot();
    const text = "12:pids:/k8s/c1\n4:cpu,memory:/default/c1\n0::/\n";
    expect(oomCountFile(text, root)).toBe(`${root}/memory/default/c1/memory.oom_control`);
  });

  it("reads cgroup v2's memory.events when only the unified hierarchy is mounted", () => {
    makeRoot();
    writeFileSync(join(root, "cgroup.controllers"), "cpu memory pids\n");
    expect(oomCountFile("0::/default/c1\n", root)).toBe(`${root}/default/c1/memory.events`);
  });

  it("has no file for a unified path when the root is not a v2 mount, nor for text without cgroups", () => {
    makeRoot();
    expect(oomCountFile("0::/default/c1\n", root)).toBeUndefined();
    expect(oomCountFile("", root)).toBeUndefined();
  });
});

describe("OomCounter", () => {
  const write = (file: string, kills: number) =>
    writeFileSync(file, `under_oom 0\noom_kill_disable 0\noom_kill ${kills}\n`);

  it("counts from the figure it was made with and reports each rise once", () => {
    makeRoot();
    mkdirSync(join(root, "c1"));
    const file = join(root, "c1", "memory.oom_control");
    write(file, 2);
    const counter = new OomCounter(file);
    expect(counter.fired()).toBe(false);
    write(file, 3);
    expect(counter.fired()).toBe(true);
    expect(counter.fired()).toBe(false);
    write(file, 5);
    expect(counter.fired()).toBe(true);
  });

  it("reports nothing once the cgroup is gone", () => {
    makeRoot();
    const file = join(root, "memory.events");
    write(file, 0);
    const counter = new OomCounter(file);
    rmSync(file);
    expect(counter.fired()).toBe(false);
  });

  // Containers need a memory cgroup, and so does the shim suite's machine.
  it("finds this process's own counter in the machine's memory cgroup", () => {
    makeRoot();
    const counter = OomCounter.of(process.pid);
    expect(counter).toBeDefined();
    expect(counter!.fired()).toBe(false);
    expect(OomCounter.of(2 ** 22 + 1)).toBeUndefined(); // no such pid
  });
});
