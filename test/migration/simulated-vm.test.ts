// The simulated VM (simulated-vm.ts): its shape and memory, its run states,
// and the device state that carries the guest across a migration. Its guest
// runs on an idle timer: the timers are faked, and every VM that ran is stopped.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { StatedContainer } from "../../src/migration/stated-state.js";
import { type DeviceState, SimulatedVm } from "../../src/migration/simulated/simulated-vm.js";

const KiB = 1024;

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
});
afterEach(() => {
  vi.useRealTimers();
});

/** A small VM (the default is 64 MiB). */
function vm(options: Partial<ConstructorParameters<typeof SimulatedVm>[0]> = {}): SimulatedVm {
  return new SimulatedVm({ sandboxId: "sb-1", memoryBytes: 64 * KiB, ...options });
}

describe("simulated VM", () => {
  it("keeps its own copy of the containers it was given", () => {
    const containers: StatedContainer[] = [{ id: "c1", state: "running", pid: 7 }];
    const v = vm({ containers });
    containers.push({ id: "c2", state: "created" });
    expect(v.containers).toEqual([{ id: "c1", state: "running", pid: 7 }]);
    expect(vm().containers).toEqual([]);
  });

  it("makes its memory from the page size, fill and zero fraction it is given", () => {
    const v = vm({ pageSize: 512, fill: "zero" });
    expect([v.memory.pageSize, v.memory.pageCount]).toEqual([512, 128]);
    expect(v.memory.knownZero(0, 128)).toBe(true);
    const defaults = vm();
    expect([defaults.memory.pageSize, defaults.memory.pageCount]).toEqual([4096, 16]);
    // Pattern by default: a guest that has been running.
    expect(defaults.memory.page(3).readUInt32LE(0)).toBe(3);
    expect(defaults.memory.knownZero(0, 16)).toBe(false);
    const sparse = vm({ memoryBytes: 64 * 64 * 512, pageSize: 512, zeroFraction: 1 });
    expect(sparse.memory.knownZero(0, sparse.memory.pageCount)).toBe(true);
  });

  it("moves between created, running, paused and stopped", () => {
    const v = vm();
    expect(v.status).toBe("created");
    // Each step, the status it leaves and whether the guest then runs.
    const steps = [
      // Pausing a VM that never ran leaves it created.
      ["pause", "created", false],
      ["run", "running", true],
      ["pause", "paused", false],
      ["run", "running", true],
      ["stop", "stopped", false],
      ["pause", "stopped", false],
    ] as const;
    for (const [step, status, guestRuns] of steps) {
      v[step]();
      expect([step, v.status, v.workload.running]).toEqual([step, status, guestRuns]);
    }
    expect(vi.getTimerCount()).toBe(0);
  });

  it("refuses to run once stopped", () => {
    const v = vm({ sandboxId: "sb-stopped" });
    v.stop();
    expect(() => v.run()).toThrow(new Error("VM sb-stopped is stopped"));
    expect(v.workload.running).toBe(false);
    expect(v.status).toBe("stopped");
  });

  it("runs at full speed after a throttle", () => {
    const v = vm();
    v.workload.throttle(30);
    v.run();
    try {
      expect(v.workload.throttlePercent).toBe(100);
    } finally {
      v.stop();
    }
  });

  it("describes its vCPUs and guest in the device state", () => {
    const v = vm({ processorCount: 2, dirtyPagesPerSecond: 750 });
    const { vcpus, ...state } = v.deviceState();
    expect(state).toEqual({
      version: 1,
      sandboxId: "sb-1",
      processorCount: 2,
      workload: { seed: 0x9e3779b9, writes: 0 },
      dirtyPagesPerSecond: 750,
    });
    expect(vcpus.map((c) => c.rsp)).toEqual(["0xffffc90000000000", "0xffffc90000004000"]);
    expect(vcpus.map((c) => c.rip)).toEqual(["0xffffffff81000000", "0xffffffff81000001"]);
  });

  it("loads a source's device state into a created VM, and its rip follows the guest's writes", () => {
    const source = vm({ processorCount: 2, dirtyPagesPerSecond: 750 });
    const sent: DeviceState = { ...source.deviceState(), workload: { seed: 12345, writes: 128 } };
    const dest = vm({ processorCount: 2, fill: "zero" });
    dest.loadDeviceState(sent);
    expect(dest.workload.state()).toEqual({ seed: 12345, writes: 128 });
    expect(dest.workload.dirtyPagesPerSecond).toBe(750);
    // 128 writes × 16 past the base, and the vCPU's index; one write more moves it by 16.
    expect(dest.deviceState().vcpus.map((c) => c.rip)).toEqual(["0xffffffff81000800", "0xffffffff81000801"]);
    dest.loadDeviceState({ ...sent, workload: { seed: 12345, writes: 129 } });
    expect(dest.deviceState().vcpus[0]!.rip).toBe("0xffffffff81000810");
  });

  it("refuses a device state of another version or processor count", () => {
    const dest = vm({ processorCount: 2 });
    const good = dest.deviceState();
    expect(() => dest.loadDeviceState({ ...good, version: 2 } as unknown as DeviceState)).toThrow(
      new Error("device state version 2 is not supported"),
    );
    expect(() => dest.loadDeviceState({ ...good, processorCount: 4 })).toThrow(
      new Error("device state has 4 processors, the VM has 2"),
    );
    // Refused states leave the guest as it was.
    expect(dest.workload.state()).toEqual(good.workload);
  });
});
