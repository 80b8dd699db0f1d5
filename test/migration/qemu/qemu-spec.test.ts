// The VM description of the QEMU backend without QEMU: which specs are
// refused and why, the argv a spec becomes, and the device model a source
// exports and a destination reads back. Booting it is test/interop/qemu's.
import { describe, expect, it } from "vitest";
import type { StatedState } from "ttrpc-es/migration";
import {
  DEFAULT_MACHINE_TYPE,
  deviceModelArgv,
  SPEC_ANNOTATION,
  specProblem,
  VERSION_ANNOTATION,
  type QemuVmSpec,
} from "ttrpc-es/migration/qemu";
import { exportSpec, importSpec } from "../../../src/migration/qemu/qemu-export.js";
import { QemuExitedError, versionString } from "../../../src/migration/qemu/qemu-vm.js";
import { invalidArgument } from "../invalid-argument.js";
import { exportedState as state, goodSpec as good } from "./exported-state.js";

const base: QemuVmSpec = { memoryMiB: 128, kernel: "/boot/vmlinuz" };

describe("specProblem", () => {
  it("accepts a minimal spec, taking the defaults", () => {
    expect(specProblem(base)).toBeUndefined();
    expect(DEFAULT_MACHINE_TYPE).toBe("pc-q35-7.2");
  });

  it.each([
    "pc-q35-7.2",
    "pc-i440fx-10.12",
    "0pc-7.2",
    `a${"b".repeat(59)}-7.2`, // 64 characters, the longest name
  ])("accepts the versioned machine type %s", (machine) => {
    expect(specProblem({ ...base, machine })).toBeUndefined();
  });

  it.each([
    ["pc-q35", "is not versioned (e.g. pc-q35-7.2)"],
    ["pc-q35-7", "is not versioned (e.g. pc-q35-7.2)"],
    ["pc-q35-7.2x", "is not versioned (e.g. pc-q35-7.2)"],
    ["Pc-q35-7.2", "is not a machine type name"],
    ["-pc-7.2", "is not a machine type name"],
    [";pc-q35-7.2", "is not a machine type name"],
    ["pc-q35-7.2;", "is not a machine type name"],
    ["pc q35-7.2", "is not a machine type name"],
    ["pc-q35-7.2,accel=kvm", "is not a machine type name"],
    [`a${"b".repeat(60)}-7.2`, "is not a machine type name"],
    ["", "is not a machine type name"],
  ])("refuses the machine type %j", (machine, why) => {
    expect(specProblem({ ...base, machine })).toBe(`machine type ${JSON.stringify(machine)} ${why}`);
  });

  it.each([16, 1 << 20])("accepts %i MiB of memory", (memoryMiB) => {
    expect(specProblem({ ...base, memoryMiB })).toBeUndefined();
  });

  it.each([15, (1 << 20) + 1, 1.5, Number.NaN])("refuses %d MiB of memory", (memoryMiB) => {
    expect(specProblem({ ...base, memoryMiB })).toBe(`memoryMiB ${memoryMiB} is not an integer from 16 to 1048576`);
  });

  it.each([1, 255])("accepts %i CPUs", (cpus) => {
    expect(specProblem({ ...base, cpus })).toBeUndefined();
  });

  it.each([0, 256, 1.5])("refuses %d CPUs", (cpus) => {
    expect(specProblem({ ...base, cpus })).toBe(`cpus ${cpus} is not an integer from 1 to 255`);
  });

  it.each([
    ["kernel", "vmlinuz"],
    ["kernel", "/boot/a,b"],
    ["kernel", "/boot/a\0b"],
    ["kernel", 7],
    ["initrd", "initrd.img"],
    ["initrd", "/x,readonly=on"],
    ["initrd", "/x\0"],
  ])("refuses the %s path %j", (key, path) => {
    expect(specProblem({ ...base, [key]: path } as unknown as QemuVmSpec)).toBe(
      `${key} must be an absolute path without commas`,
    );
  });

  it("accepts an absolute initrd and any kernel command line without NUL", () => {
    expect(specProblem({ ...base, initrd: "/boot/initrd.img", append: "console=ttyS0, quiet" })).toBeUndefined();
  });

  it.each(["a\0b", 5])("refuses the command line %j", (append) => {
    expect(specProblem({ ...base, append } as unknown as QemuVmSpec)).toBe("append must be a string");
  });

  it("accepts tcg and kvm and refuses another accelerator", () => {
    expect(specProblem({ ...base, accel: "tcg" })).toBeUndefined();
    expect(specProblem({ ...base, accel: "kvm" })).toBeUndefined();
    expect(specProblem({ ...base, accel: "xen" } as unknown as QemuVmSpec)).toBe("accel xen is not tcg or kvm");
  });
});

describe("deviceModelArgv", () => {
  it("pins the defaults of a minimal spec", () => {
    expect(deviceModelArgv(base)).toEqual([
      "-machine",
      "pc-q35-7.2,accel=tcg",
      "-m",
      "128",
      "-smp",
      "1",
      "-nodefaults",
      "-no-user-config",
      "-display",
      "none",
      "-kernel",
      "/boot/vmlinuz",
    ]);
  });

  it("passes every field of a full spec", () => {
    const argv = deviceModelArgv({
      machine: "pc-i440fx-7.2",
      memoryMiB: 256,
      cpus: 2,
      kernel: "/k",
      initrd: "/i",
      append: "console=ttyS0",
      accel: "kvm",
    });
    expect(argv.slice(0, 6)).toEqual(["-machine", "pc-i440fx-7.2,accel=kvm", "-m", "256", "-smp", "2"]);
    expect(argv.slice(-6)).toEqual(["-kernel", "/k", "-initrd", "/i", "-append", "console=ttyS0"]);
  });
});

describe("QemuExitedError and versionString", () => {
  it("says how QEMU ended, what it said last, and the guest's last console lines", () => {
    const e = new QemuExitedError({ code: 1, signal: null }, "qemu: cannot open", ["tick 4", "tick 5"]);
    expect(e.name).toBe("QemuExitedError");
    expect(e.exit).toEqual({ code: 1, signal: null });
    expect(e.message).toBe("QEMU exited (status 1): qemu: cannot open; the guest's console ended: tick 4 | tick 5");
    expect(new QemuExitedError({ code: null, signal: "SIGKILL" }, "").message).toBe("QEMU exited (status SIGKILL)");
  });

  it("writes a version as major.minor.micro", () => {
    expect(versionString({ major: 7, minor: 2, micro: 22 })).toBe("7.2.22");
  });
});

const request = { sessionId: "sess", sessionNumber: 1, origin: "Source", options: { SkipThrottling: true } };

describe("the exported device model", () => {
  it("pins the defaults and carries the options, the memory and the version", () => {
    const s = exportSpec(base, "7.2.22", "sb", request as unknown as Parameters<typeof exportSpec>[3]);
    expect(s).toEqual({
      schemaVersion: 1,
      sandboxId: "sb",
      sessionId: "sess",
      vm: { guestOs: "linux", processorCount: 1, memory: { sizeBytes: 128 * 1024 * 1024, pageSize: 4096 } },
      containers: [],
      initOptions: { SkipThrottling: true },
      annotations: {
        [SPEC_ANNOTATION]: JSON.stringify({ ...base, machine: "pc-q35-7.2", cpus: 1, accel: "tcg" }),
        [VERSION_ANNOTATION]: "7.2.22",
      },
    });
  });

  it("keeps what the spec names and reads back as the same spec", () => {
    const full: QemuVmSpec = {
      machine: "pc-i440fx-7.2",
      memoryMiB: 64,
      cpus: 3,
      kernel: "/k",
      initrd: "/i",
      append: "quiet",
      accel: "kvm",
    };
    const s = exportSpec(full, "8.0.1", "sb", request as unknown as Parameters<typeof exportSpec>[3]);
    expect(s.vm.processorCount).toBe(3);
    expect(importSpec(s)).toEqual({ spec: full, version: "8.0.1" });
  });
});

/** The rawMessage of the INVALID_ARGUMENT importSpec throws for `s`. */
const refusal = (s: StatedState): string => invalidArgument(() => importSpec(s));

describe("importSpec", () => {
  it("takes only the spec's known fields", () => {
    const { spec } = importSpec(state(JSON.stringify({ ...good, argv: ["-evil"] })));
    expect(spec).toEqual(good);
    expect(Object.keys(spec)).not.toContain("initrd");
    expect(Object.keys(spec)).not.toContain("append");
  });

  it.each([
    ["no spec", state(undefined), `config: no ${SPEC_ANNOTATION} annotation: not exported by a QEMU shim`],
    ["no version", state(JSON.stringify(good), null), `config: ${VERSION_ANNOTATION} is not a QEMU version`],
    ["a two-part version", state(JSON.stringify(good), "7.2"), `config: ${VERSION_ANNOTATION} is not a QEMU version`],
    [
      "a prefixed version",
      state(JSON.stringify(good), "v7.2.0"),
      `config: ${VERSION_ANNOTATION} is not a QEMU version`,
    ],
    [
      "a suffixed version",
      state(JSON.stringify(good), "7.2.0-rc1"),
      `config: ${VERSION_ANNOTATION} is not a QEMU version`,
    ],
    ["a spec that is not JSON", state("{"), `config: ${SPEC_ANNOTATION} is not JSON`],
    ["a spec that is an array", state("[]"), `config: ${SPEC_ANNOTATION} is not an object`],
    ["a spec that is null", state("null"), `config: ${SPEC_ANNOTATION} is not an object`],
    ["a spec that is a number", state("5"), `config: ${SPEC_ANNOTATION} is not an object`],
    [
      "a spec without a machine",
      state(JSON.stringify({ ...good, machine: undefined })),
      "config: machine type missing",
    ],
    ["a machine that is a number", state(JSON.stringify({ ...good, machine: 7 })), "config: machine type missing"],
    [
      "a bad kernel path",
      state(JSON.stringify({ ...good, kernel: "k" })),
      "config: kernel must be an absolute path without commas",
    ],
    [
      "memory unlike the state's",
      state(JSON.stringify(good), "7.2.22", 64 << 20),
      "config: vm.memory.size_bytes differs from the device model's memory",
    ],
  ])("refuses %s with INVALID_ARGUMENT", (_what, s, message) => {
    expect(refusal(s)).toBe(message);
  });
});
