// QemuProcess and probeQemu without QEMU: the binary is a shell script that
// records its argv and sleeps, and its monitor is a scripted QMP peer on the
// `-qmp` path (scripted-qmp.ts says why both stand in). What is checked is
// what this module does: the argv, the connect, the stop, the reaping and the
// console's end. Real QEMU runs in test/interop/qemu.
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it, onTestFinished, vi } from "vitest";
import { deviceModelArgv, probeQemu, QemuProcess, QmpClosedError, type QemuVmSpec } from "ttrpc-es/migration/qemu";
import { QemuExitedError } from "../../../src/migration/qemu/qemu-vm.js";
import { tempDir } from "../../common.js";
import { fakeQemu } from "./scripted-qmp.js";

const spec: QemuVmSpec = { memoryMiB: 64, kernel: "/boot/vmlinuz" };

async function started(o: { incoming?: boolean; scripts?: Parameters<typeof fakeQemu>[0] } = {}) {
  const fake = fakeQemu(o.scripts);
  const dir = tempDir();
  const starting = QemuProcess.start({
    spec,
    dir,
    name: "source",
    binary: fake.binary,
    ...(o.incoming === undefined ? {} : { incoming: o.incoming }),
  });
  const run = await fake.started();
  const vm = await starting;
  onTestFinished(() => vm[Symbol.asyncDispose]());
  return { vm, run, dir };
}

function script(body: string): string {
  const path = join(tempDir(), "qemu");
  writeFileSync(path, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return path;
}

describe("QemuProcess", () => {
  it("runs the device model with its monitor, its console file, no HMP monitor and no reboot", async () => {
    const { vm, run, dir } = await started();
    expect(run.argv).toEqual([
      ...deviceModelArgv(spec),
      "-qmp",
      `unix:${join(dir, "source.qmp")},server=on,wait=off`,
      "-serial",
      `file:${join(dir, "source.serial")}`,
      "-monitor",
      "none",
      "-no-reboot",
    ]);
    expect(vm.pid).toBe(run.pid);
    expect(vm.serial.path).toBe(join(dir, "source.serial"));
    expect(vm.exit).toBeUndefined();
  });

  it("adds -incoming defer for a destination", async () => {
    const { run } = await started({ incoming: true });
    expect(run.argv.slice(-2)).toEqual(["-incoming", "defer"]);
  });

  it("reads the status over QMP and keeps QEMU's stderr", async () => {
    const { vm, run } = await started({ scripts: { "query-status": (c, p) => p.reply(c, { status: "inmigrate" }) } });
    expect(await vm.status()).toBe("inmigrate");
    expect(run.peer.names()).toEqual(["query-status"]);
    await vi.waitFor(() => expect(vm.stderrTail()).toBe("fake qemu: up"), { timeout: 5000 });
  });

  it("stops with quit and reports the exit; a second stop asks nothing", async () => {
    const { vm, run } = await started();
    const exit = await vm.stop();
    expect(exit).toEqual({ code: null, signal: "SIGTERM" });
    expect(vm.exit).toEqual(exit);
    expect(await vm.stop()).toBe(exit);
    expect(run.peer.names()).toEqual(["quit"]);
  });

  it("kills at once, and ends waits on the console with the exit and the last lines", async () => {
    const { vm, dir } = await started();
    writeFileSync(join(dir, "source.serial"), "tick 1\ntick 2\n");
    const never = vm.serial.waitFor((l) => l === "never").catch((e: unknown) => e);
    expect(await vm.kill()).toEqual({ code: null, signal: "SIGKILL" });
    const e = await never;
    expect(e).toBeInstanceOf(QemuExitedError);
    expect((e as QemuExitedError).message).toBe(
      "QEMU exited (status SIGKILL): fake qemu: up; the guest's console ended: tick 1 | tick 2",
    );
    expect(vm.serial.lines).toEqual(["tick 1", "tick 2"]);
  });

  it("removes its monitor socket and console file when disposed", async () => {
    const { vm, dir } = await started();
    writeFileSync(join(dir, "source.serial"), "x\n");
    await vm[Symbol.asyncDispose]();
    expect(existsSync(join(dir, "source.qmp"))).toBe(false);
    expect(existsSync(join(dir, "source.serial"))).toBe(false);
    expect(vm.qmp.isClosed).toBe(true);
  });

  it("fails with QEMU's stderr when it exits before its monitor is up", async () => {
    const dir = tempDir();
    const binary = script('echo "qemu: -machine: unsupported" >&2; exit 3');
    const e = await QemuProcess.start({ spec, dir, name: "source", binary }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(QmpClosedError);
    expect((e as Error).message).toBe("QEMU exited (status 3) before its monitor was up: qemu: -machine: unsupported");
  });

  it("fails when the binary cannot be run", async () => {
    const dir = tempDir();
    const e = await QemuProcess.start({ spec, dir, name: "source", binary: join(dir, "missing") }).catch(
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(QmpClosedError);
    expect((e as Error).message).toMatch(/^QEMU exited \(status null\) before its monitor was up/);
  });

  it("gives up with the signal's reason, reaping the process", async () => {
    const fake = fakeQemu();
    const ac = new AbortController();
    const starting = QemuProcess.start({
      spec,
      dir: tempDir(),
      name: "source",
      binary: fake.binary,
      signal: ac.signal,
    });
    const stop = new Error("cancelled");
    // Aborted once the process runs and before anyone serves its monitor.
    const run = await fake.started().then((r) => {
      ac.abort(stop);
      return r;
    });
    await expect(starting).rejects.toBe(stop);
    expect(() => process.kill(run.pid, 0)).toThrow();
  });
});

describe("probeQemu", () => {
  it("reads the version and the machine types, once per binary", async () => {
    const fake = fakeQemu({}, { version: "8.1.3", machines: ["pc-q35-8.1", "microvm"] });
    const probe = probeQemu(fake.binary);
    expect(probeQemu(fake.binary)).toBe(probe);
    const { version, machines } = await probe;
    expect(version).toBe("8.1.3");
    expect([...machines]).toEqual(["pc-q35-8.1", "microvm"]);
  });

  it("refuses an unreadable version, and asks again after a failure", async () => {
    const dir = tempDir();
    const marker = join(dir, "second");
    const binary = script(
      `if [ "$1" = --version ] && [ ! -e ${marker} ]; then touch ${marker}; echo "not qemu"; exit 0; fi\n` +
        'if [ "$1" = --version ]; then echo "QEMU emulator version 7.2.22"; else printf "head\\npc-q35-7.2 x\\n"; fi',
    );
    await expect(probeQemu(binary)).rejects.toThrow(`cannot read the version of ${binary}: not qemu`);
    const again = await probeQemu(binary);
    expect(again.version).toBe("7.2.22");
    expect([...again.machines]).toEqual(["pc-q35-7.2"]);
  });
});
