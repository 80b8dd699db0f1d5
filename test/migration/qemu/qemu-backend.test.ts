// The QEMU backend's own decisions without QEMU: the binary is a shell
// script and the monitor a scripted QMP peer (scripted-qmp.ts says why both
// stand in). Checked here: what each call refuses, which QMP commands it
// sends, and how it recovers or stops its VM. Whole migrations between two
// real QEMUs are test/interop/qemu's.
import { describe, expect, it, onTestFinished } from "vitest";
import { Code, TtrpcError } from "ttrpc-es";
import { PhaseState, type StatedState } from "ttrpc-es/migration";
import { encodeEndpointDescriptor } from "../../../src/migration/endpoint-descriptor.js";
import { createQemuBackend, QemuBackend, type QemuBackendEvent, type QemuVmSpec } from "ttrpc-es/migration/qemu";
import { exportSpec } from "../../../src/migration/qemu/qemu-export.js";
import { rejection, tempDir } from "../../common.js";
import { fakeQemu, recordingReporter, type FakeQemuRun, type QmpScript } from "./scripted-qmp.js";

const spec: QemuVmSpec = { memoryMiB: 64, kernel: "/boot/vmlinuz" };
const session = { sessionId: "s1", sessionNumber: 7 };

function backend(o: ConstructorParameters<typeof QemuBackend>[0] = {}) {
  const events: QemuBackendEvent[] = [];
  const b = createQemuBackend({ ...o, observe: (e) => events.push(e) });
  onTestFinished(() => b.close());
  return { b, events };
}

/** A source backend whose VM runs the fake QEMU; `scripts` answer its monitor. */
async function runningSource(scripts: Record<string, QmpScript> = {}, o: { socket?: "uri" | "fd" } = {}) {
  const fake = fakeQemu({ "query-status": (c, p) => p.reply(c, { status: "running" }), ...scripts });
  const { b, events } = backend({ vm: spec, binary: fake.binary, dir: tempDir(), ...o });
  const starting = b.start();
  const run: FakeQemuRun = await fake.started();
  // Stopped before its monitor's peer closes (finish hooks run last first): quit, not a 2 s grace.
  onTestFinished(() => b.close());
  const vm = await starting;
  return { b, events, run, vm };
}

const prepareRequest = (options = {}) => ({
  ...session,
  origin: "Source" as const,
  options,
  signal: new AbortController().signal,
});

describe("QemuBackend without a VM", () => {
  it("refuses a bad VM spec at construction", () => {
    expect(() => new QemuBackend({ vm: { ...spec, memoryMiB: 1 } })).toThrow(RangeError);
    expect(() => new QemuBackend({ vm: { ...spec, memoryMiB: 1 } })).toThrow(
      "vm: memoryMiB 1 is not an integer from 16 to 1048576",
    );
  });

  it("cannot start a destination, and has nothing to migrate, transfer or resume", async () => {
    const { b } = backend();
    await expect(b.start()).rejects.toThrow("no vm in the options: this shim is a destination");
    expect(b.vm).toBeUndefined();
    expect((await rejection(b.prepareSource(prepareRequest()), TtrpcError)).code).toBe(Code.FailedPrecondition);
    const transfer = (origin: "Source" | "Destination") =>
      b.transfer({ ...session, origin, signal: new AbortController().signal } as never);
    expect(await transfer("Source")).toEqual({
      ok: false,
      state: PhaseState.SOURCE_FAILED,
      message: "no QEMU on this shim",
    });
    expect(await transfer("Destination")).toEqual({
      ok: false,
      state: PhaseState.DESTINATION_FAILED,
      message: "no QEMU on this shim",
    });
    expect((await rejection(b.finalize({ ...session, outcome: "destination-resume" } as never), TtrpcError)).code).toBe(
      Code.FailedPrecondition,
    );
    expect(await b.finalize({ ...session, outcome: "source-resume" } as never)).toEqual({ recovered: false });
  });

  it("checks the endpoint's role against the side in URI mode only", () => {
    const token = new Uint8Array(16).fill(3);
    const listen = encodeEndpointDescriptor({
      transport: "unix",
      role: "listen",
      sessionNumber: 7,
      token,
      address: "/m",
    });
    const uri = backend().b;
    expect(uri.parseEndpoint(listen, { ...session, origin: "Destination" } as never).role).toBe("listen");
    expect(() => uri.parseEndpoint(listen, { ...session, origin: "Source" } as never)).toThrow(TtrpcError);
    const fd = backend({ socket: "fd" }).b;
    expect(fd.parseEndpoint(listen, { ...session, origin: "Source" } as never).address).toBe("/m");
  });
});

function exported(version = "7.2.22", machine = "pc-q35-7.2"): StatedState {
  return exportSpec({ ...spec, machine }, version, "sb", prepareRequest() as never);
}

describe("importSandbox", () => {
  it.each([
    ["the same version", "7.2.22"],
    ["a newer micro version of the source (only major.minor must not be newer)", "7.2.30"],
    ["an older source", "6.2.0"],
  ])("accepts %s", async (_what, version) => {
    const fake = fakeQemu();
    const { b } = backend({ binary: fake.binary });
    await expect(
      b.importSandbox({ ...session, origin: "Destination", state: exported(version) } as never),
    ).resolves.toBeUndefined();
  });

  it.each([
    ["a newer minor version", "7.3.0"],
    ["a newer major version", "8.0.0"],
  ])("refuses a source of %s", async (_what, version) => {
    const fake = fakeQemu();
    const { b } = backend({ binary: fake.binary });
    const e = await b
      .importSandbox({ ...session, origin: "Destination", state: exported(version) } as never)
      .catch((x: unknown) => x as TtrpcError);
    expect(e?.code).toBe(Code.FailedPrecondition);
    expect(e?.rawMessage).toBe(`this host's QEMU 7.2.22 is older than the source's ${version}`);
  });

  it("refuses a machine type this host's QEMU lacks", async () => {
    const fake = fakeQemu();
    const { b } = backend({ binary: fake.binary });
    const e = await b
      .importSandbox({ ...session, origin: "Destination", state: exported("7.2.22", "pc-q35-9.0") } as never)
      .catch((x: unknown) => x as TtrpcError);
    expect(e?.code).toBe(Code.FailedPrecondition);
    expect(e?.rawMessage).toBe("this host's QEMU 7.2.22 has no machine type pc-q35-9.0");
  });

  it("refuses when QEMU cannot run on this host", async () => {
    const { b } = backend({ binary: `${tempDir()}/none` });
    const e = await b
      .importSandbox({ ...session, origin: "Destination", state: exported() } as never)
      .catch((x: unknown) => x as TtrpcError);
    expect(e?.code).toBe(Code.FailedPrecondition);
    expect(e?.rawMessage).toMatch(/^cannot run QEMU on this host: /);
  });
});

describe("QemuBackend with a running source", () => {
  it("reports the VM started and its console lines", async () => {
    const { b, events, run, vm } = await runningSource();
    expect(b.vm).toBe(vm);
    expect(events[0]).toEqual({ type: "vm", side: "source", state: "started", pid: run.pid });
    await expect(b.start()).rejects.toThrow("the VM is already started");
  });

  it("sets the capabilities and parameters on prepareSource and exports the spec with QEMU's version", async () => {
    const { b, run } = await runningSource();
    const state = await b.prepareSource(
      prepareRequest({ MemoryTransferThrottleParams: { TargetBlackoutTransferTime: 300 } }),
    );
    expect(run.peer.names()).toEqual(["query-status", "migrate-set-capabilities", "migrate-set-parameters"]);
    expect(run.peer.received[1]!.arguments).toEqual({
      capabilities: [
        { capability: "events", state: true },
        { capability: "auto-converge", state: false },
        { capability: "multifd", state: false },
      ],
    });
    expect(run.peer.received[2]!.arguments).toEqual({ "max-bandwidth": 4 * 1024 ** 3, "downtime-limit": 300 });
    expect(state.sandboxId).toBe("qemu-sandbox");
    expect(state.annotations["ttrpc-es.qemu/version"]).toBe("7.2.22");
  });

  it("refuses to migrate a source VM that is not running", async () => {
    const { b, run } = await runningSource({ "query-status": (c, p) => p.reply(c, { status: "paused" }) });
    const e = (await b.prepareSource(prepareRequest()).catch((x: unknown) => x)) as TtrpcError;
    expect(e?.code).toBe(Code.FailedPrecondition);
    expect(e?.rawMessage).toBe("the source VM is paused, not running");
    expect(run.peer.names()).toEqual(["query-status"]);
  });

  it("runs the source transfer on the endpoint's URI", async () => {
    const { b, run, events } = await runningSource({
      migrate: (c, p) => {
        p.reply(c);
        p.event("MIGRATION", { status: "completed" });
      },
      "query-migrate": (c, p) => p.reply(c, { "total-time": 3, downtime: 1 }),
    });
    const token = new Uint8Array(16).fill(3);
    const result = await b.transfer({
      ...session,
      origin: "Source",
      endpoint: { version: 1, transport: "unix", role: "connect", sessionNumber: 7, token, address: "/m.sock" },
      options: {},
      report: recordingReporter(),
      signal: new AbortController().signal,
    } as never);
    expect(result).toEqual({ ok: true });
    expect(run.peer.received[0]).toMatchObject({ execute: "migrate", arguments: { uri: "unix:/m.sock" } });
    expect(events).toContainEqual({ side: "source", type: "status", status: "completed" });
  });

  it("stops the VM on source-stop, saying so", async () => {
    const { b, run, events } = await runningSource();
    await b.finalize({ ...session, outcome: "source-stop" } as never);
    expect(run.peer.names()).toContain("quit");
    expect(b.vm).toBeUndefined();
    expect(events.at(-1)).toEqual({ type: "vm", side: "source", state: "stopped" });
  });

  it("recovers a source still active: cancels, waits for the end, and continues a paused guest", async () => {
    let running = false;
    const { b, run } = await runningSource({
      "query-migrate": (c, p) => p.reply(c, { status: "active" }),
      migrate_cancel: (c, p) => {
        p.reply(c);
        p.event("MIGRATION", { status: "cancelled" });
      },
      "query-status": (c, p) => p.reply(c, { status: running ? "running" : "paused" }),
      cont: (c, p) => {
        running = true;
        p.reply(c);
      },
    });
    expect(await b.finalize({ ...session, outcome: "source-resume" } as never)).toEqual({ recovered: true });
    expect(run.peer.names()).toEqual(["query-migrate", "migrate_cancel", "query-status", "cont", "query-status"]);
  });

  it.each(["setup", "device", "pre-switchover"])("cancels a source migration in %s first", async (status) => {
    const { b, run } = await runningSource({
      "query-migrate": (c, p) => p.reply(c, { status }),
      migrate_cancel: (c, p) => {
        p.reply(c);
        p.event("MIGRATION", { status: "failed" });
      },
    });
    expect(await b.finalize({ ...session, outcome: "source-resume" } as never)).toEqual({ recovered: true });
    expect(run.peer.names()).toEqual(["query-migrate", "migrate_cancel", "query-status", "query-status"]);
  });

  it("never continues a source that handed its guest over", async () => {
    const { b, run } = await runningSource({
      "query-migrate": (c, p) => p.reply(c, { status: "completed" }),
      "query-status": (c, p) => p.reply(c, { status: "postmigrate" }),
    });
    expect(await b.finalize({ ...session, outcome: "source-resume" } as never)).toEqual({ recovered: false });
    expect(run.peer.names()).toEqual(["query-migrate", "query-status"]);
  });

  it("reports a source it cannot ask as not recovered", async () => {
    const { b } = await runningSource({ "query-migrate": (c, p) => p.fail(c, "GenericError", "no") });
    expect(await b.finalize({ ...session, outcome: "source-resume" } as never)).toEqual({ recovered: false });
  });
});

describe("QemuBackend as a destination", () => {
  async function prepared(scripts: Record<string, QmpScript> = {}, options = {}) {
    const fake = fakeQemu(scripts);
    const { b, events } = backend({ binary: fake.binary, dir: tempDir() });
    const state = { ...exported(), initOptions: options };
    await b.importSandbox({ ...session, origin: "Destination", state } as never);
    const preparing = b.prepareDestination({
      ...session,
      origin: "Destination",
      state,
      options: {},
      signal: new AbortController().signal,
    } as never);
    const run = await fake.started();
    onTestFinished(() => b.close());
    return { b, events, run, preparing };
  }

  it("starts QEMU with -incoming defer and sets the source's capabilities", async () => {
    const { b, run, preparing, events } = await prepared();
    await preparing;
    expect(run.argv.slice(-2)).toEqual(["-incoming", "defer"]);
    expect(run.peer.names()).toEqual(["migrate-set-capabilities"]);
    expect(events[0]).toMatchObject({ type: "vm", side: "destination", state: "started" });
    expect(b.vm?.pid).toBe(run.pid);
  });

  it("sets the multifd channels too when the source uses them", async () => {
    const { run, preparing } = await prepared({}, { CompressionSettings: { ThrottleWorkerCount: 4 } });
    await preparing;
    expect(run.peer.names()).toEqual(["migrate-set-capabilities", "migrate-set-parameters"]);
    expect(run.peer.received[1]!.arguments).toEqual({ "multifd-channels": 4 });
  });

  it("stops the VM again when QEMU refuses the capabilities", async () => {
    const { b, run, preparing } = await prepared({
      "migrate-set-capabilities": (c, p) => p.fail(c, "GenericError", "no"),
    });
    await expect(preparing).rejects.toThrow("no");
    expect(run.peer.names()).toEqual(["migrate-set-capabilities", "quit"]);
    expect(b.vm).toBeUndefined();
  });

  it("refuses a second import while a VM runs", async () => {
    const { b, preparing } = await prepared();
    await preparing;
    expect(
      (await rejection(b.importSandbox({ ...session, origin: "Destination", state: exported() } as never), TtrpcError))
        .code,
    ).toBe(Code.FailedPrecondition);
  });

  it("continues a destination guest that is not running on destination-resume, and only then", async () => {
    let status = "paused";
    const { b, run, preparing } = await prepared({
      "query-status": (c, p) => p.reply(c, { status }),
      cont: (c, p) => {
        status = "running";
        p.reply(c);
      },
    });
    await preparing;
    await b.finalize({ ...session, outcome: "destination-resume" } as never);
    await b.finalize({ ...session, outcome: "destination-resume" } as never);
    expect(run.peer.names()).toEqual(["migrate-set-capabilities", "query-status", "cont", "query-status"]);
  });

  it("stops a destination VM that does not run at cleanup, and keeps a running one", async () => {
    const { b, run, preparing } = await prepared({ "query-status": (c, p) => p.reply(c, { status: "running" }) });
    await preparing;
    await b.cleanup({ ...session, origin: "Destination" } as never);
    expect(b.vm).toBeDefined();
    // A cleanup of another session touches nothing.
    await b.cleanup({ ...session, sessionId: "other", origin: "Destination" } as never);
    expect(b.vm).toBeDefined();
    expect(run.peer.names()).toEqual(["migrate-set-capabilities", "query-status"]);
  });

  it("stops a destination VM that never resumed at cleanup", async () => {
    const { b, run, preparing } = await prepared({ "query-status": (c, p) => p.reply(c, { status: "inmigrate" }) });
    await preparing;
    await b.cleanup({ ...session, origin: "Destination" } as never);
    expect(b.vm).toBeUndefined();
    expect(run.peer.names()).toEqual(["migrate-set-capabilities", "query-status", "quit"]);
  });
});
