// How the QEMU backend maps the migration's options and the exported device
// model, without QEMU: what it refuses, and what a destination accepts off
// the wire. The migrations themselves are in test/interop/qemu.
import { describe, expect, it } from "vitest";
import { Code, TtrpcError } from "ttrpc-es";
import type { StatedState } from "ttrpc-es/migration";
import { deviceModelArgv } from "ttrpc-es/migration/qemu";
import { importSpec } from "../../../src/migration/qemu/qemu-export.js";
import { migrationSetup, sourceLimits } from "../../../src/migration/qemu/qemu-options.js";
import { thrown } from "../../common.js";
import { exportedState, goodSpec as good } from "./exported-state.js";

const settings = { socket: "uri", maxBandwidth: 1 << 30, allowThrottling: false } as const;

/** The state a source exports for `spec` (written as JSON). */
const state = (spec: unknown, version?: string, sizeBytes?: number): StatedState =>
  exportedState(JSON.stringify(spec), version, sizeBytes);

describe("QEMU option mapping", () => {
  it("sets events and the bandwidth, maps the blackout target to downtime-limit", () => {
    const s = migrationSetup({ MemoryTransferThrottleParams: { TargetBlackoutTransferTime: 250 } }, settings);
    expect(s.capabilities).toContainEqual({ capability: "events", state: true });
    expect(s.capabilities).toContainEqual({ capability: "auto-converge", state: false });
    expect(s.parameters).toEqual({ "max-bandwidth": 1 << 30, "downtime-limit": 250 });
  });

  it("refuses checksum_verification (QEMU 7.2 has no RAM checksum) with UNIMPLEMENTED", () => {
    expect(thrown(() => migrationSetup({ ChecksumVerification: true }, settings), TtrpcError).code).toBe(
      Code.Unimplemented,
    );
  });

  it("maps throttle_worker_count to multifd channels on both sides, and refuses it on one fd-passed socket", () => {
    const s = migrationSetup({ CompressionSettings: { ThrottleWorkerCount: 3 } }, settings);
    expect(s.capabilities).toContainEqual({ capability: "multifd", state: true });
    expect(s.destinationParameters).toEqual({ "multifd-channels": 3 });
    const fd = () => migrationSetup({ CompressionSettings: { ThrottleWorkerCount: 3 } }, { ...settings, socket: "fd" });
    expect(thrown(fd, TtrpcError).code).toBe(Code.InvalidArgument);
  });

  it("turns auto-converge on only when the backend allows throttling", () => {
    const o = { MemoryTransferThrottleParams: { SkipThrottling: false, MinimumThrottlePercentage: 30 } };
    expect(migrationSetup(o, settings).capabilities).toContainEqual({ capability: "auto-converge", state: false });
    const on = migrationSetup(o, { ...settings, allowThrottling: true });
    expect(on.capabilities).toContainEqual({ capability: "auto-converge", state: true });
    expect(on.parameters["max-cpu-throttle"]).toBe(70);
  });

  it("enforces the blackout threshold only when CancelIfBlackoutThresholdExceeds is set", () => {
    const t = { MaximumNumberOfBrownoutTransferPasses: 4, BlackoutTimeThresholdForCancellingMigration: 300 };
    expect(sourceLimits({ MemoryTransferThrottleParams: t })).toEqual({ maxPasses: 4 });
    expect(sourceLimits({ MemoryTransferThrottleParams: t, CancelIfBlackoutThresholdExceeds: true })).toEqual({
      maxPasses: 4,
      cancelThresholdMs: 300,
    });
  });
});

describe("the exported device model, as a destination reads it", () => {
  it("accepts a pinned spec and builds its argv itself", () => {
    const { spec, version } = importSpec(state(good));
    expect(version).toBe("7.2.22");
    expect(deviceModelArgv(spec).slice(0, 4)).toEqual(["-machine", "pc-q35-7.2,accel=tcg", "-m", "128"]);
  });

  it.each([
    ["an unversioned machine type", { ...good, machine: "q35" }],
    ["a machine type carrying options", { ...good, machine: "pc-q35-7.2,accel=kvm" }],
    ["a relative kernel path", { ...good, kernel: "vmlinuz" }],
    ["a path with a comma (QEMU option syntax)", { ...good, initrd: "/x,readonly=on" }],
    ["memory that is not an integer", { ...good, memoryMiB: 1.5 }],
  ])("refuses %s with INVALID_ARGUMENT", (_what, spec) => {
    expect(thrown(() => importSpec(state(spec)), TtrpcError).code).toBe(Code.InvalidArgument);
  });

  it("refuses a spec whose memory differs from the state's, a bad version and a missing spec", () => {
    expect(thrown(() => importSpec(state(good, "7.2.22", 64 << 20)), TtrpcError).code).toBe(Code.InvalidArgument);
    expect(thrown(() => importSpec(state(good, "seven")), TtrpcError).code).toBe(Code.InvalidArgument);
    const none = state(good);
    none.annotations = {};
    expect(thrown(() => importSpec(none), TtrpcError).code).toBe(Code.InvalidArgument);
  });
});

describe("QEMU option mapping, case by case", () => {
  const caps = (o: Parameters<typeof migrationSetup>[0], s: Parameters<typeof migrationSetup>[1] = settings) =>
    migrationSetup(o, s).capabilities;

  it("sets events, auto-converge and multifd, in that order, with no options at all", () => {
    const s = migrationSetup({}, settings);
    expect(s.capabilities).toEqual([
      { capability: "events", state: true },
      { capability: "auto-converge", state: false },
      { capability: "multifd", state: false },
    ]);
    expect(s.parameters).toEqual({ "max-bandwidth": 1 << 30 });
    expect(s.destinationParameters).toBeUndefined();
  });

  it("names why it refuses checksum_verification", () => {
    const e = (() => {
      try {
        migrationSetup({ ChecksumVerification: true }, settings);
      } catch (x) {
        return x as TtrpcError;
      }
    })();
    expect(e?.rawMessage).toBe(
      "checksum_verification: QEMU 7.2 has no RAM checksum (use TLS for integrity in transit)",
    );
  });

  it.each([
    [0, undefined],
    [1, 1],
    [2_000_000, 2_000_000],
    [5_000_000, 2_000_000],
  ])("maps a blackout target of %i ms to downtime-limit %s", (target, limit) => {
    const p = migrationSetup({ MemoryTransferThrottleParams: { TargetBlackoutTransferTime: target } }, settings);
    expect(p.parameters["downtime-limit"]).toBe(limit);
  });

  it("leaves auto-converge off unless SkipThrottling is false, even when allowed", () => {
    const allowed = { ...settings, allowThrottling: true };
    expect(caps({ MemoryTransferThrottleParams: { SkipThrottling: true } }, allowed)).toContainEqual({
      capability: "auto-converge",
      state: false,
    });
    expect(caps({ MemoryTransferThrottleParams: {} }, allowed)).toContainEqual({
      capability: "auto-converge",
      state: false,
    });
  });

  it.each([
    [0.4, 1],
    [7.6, 8],
    [150, 100],
    [-3, 1],
  ])("clamps a throttling scale of %d to a cpu-throttle-increment of %i", (scale, increment) => {
    const o = { MemoryTransferThrottleParams: { SkipThrottling: false, ThrottlingScale: scale } };
    const p = migrationSetup(o, { ...settings, allowThrottling: true }).parameters;
    expect(p["cpu-throttle-increment"]).toBe(increment);
    expect(p["max-cpu-throttle"]).toBeUndefined();
  });

  it.each([
    [0, 99],
    [30, 70],
    [100, 1],
    [150, 1],
  ])("maps a minimum throttle of %i %% to a max-cpu-throttle of %i", (minimum, max) => {
    const o = { MemoryTransferThrottleParams: { SkipThrottling: false, MinimumThrottlePercentage: minimum } };
    const p = migrationSetup(o, { ...settings, allowThrottling: true }).parameters;
    expect(p["max-cpu-throttle"]).toBe(max);
    expect(p["cpu-throttle-increment"]).toBeUndefined();
  });

  it("sets no throttling parameters while throttling is not allowed", () => {
    const o = {
      MemoryTransferThrottleParams: { SkipThrottling: false, ThrottlingScale: 10, MinimumThrottlePercentage: 30 },
    };
    expect(migrationSetup(o, settings).parameters).toEqual({ "max-bandwidth": 1 << 30 });
  });

  it("keeps one worker single-channel, also on an fd-passed socket", () => {
    const one = { CompressionSettings: { ThrottleWorkerCount: 1 } };
    for (const socket of ["uri", "fd"] as const) {
      const s = migrationSetup(one, { ...settings, socket });
      expect(s.capabilities).toContainEqual({ capability: "multifd", state: false });
      expect(s.parameters["multifd-channels"]).toBeUndefined();
      expect(s.destinationParameters).toBeUndefined();
    }
  });

  it("caps multifd at 255 channels on both sides", () => {
    const s = migrationSetup({ CompressionSettings: { ThrottleWorkerCount: 300 } }, settings);
    expect(s.parameters["multifd-channels"]).toBe(255);
    expect(s.destinationParameters).toEqual({ "multifd-channels": 255 });
  });

  it("says why several workers cannot share one fd-passed socket", () => {
    try {
      migrationSetup({ CompressionSettings: { ThrottleWorkerCount: 2 } }, { ...settings, socket: "fd" });
      expect.unreachable();
    } catch (e) {
      expect((e as TtrpcError).rawMessage).toBe(
        "throttle_worker_count 2: QEMU's multifd needs tcp/unix URIs, not one duplicated socket",
      );
    }
  });

  it("sets no source limits without options, and a zero pass limit as given", () => {
    expect(sourceLimits({})).toEqual({});
    expect(sourceLimits({ MemoryTransferThrottleParams: { MaximumNumberOfBrownoutTransferPasses: 0 } })).toEqual({
      maxPasses: 0,
    });
    expect(sourceLimits({ CancelIfBlackoutThresholdExceeds: true })).toEqual({});
  });
});
