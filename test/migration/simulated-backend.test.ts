// The simulated backend's own surface, without a server in front of it: the
// preconditions of each step (what it refuses, with which code and message),
// a transfer that cannot start, the finalize outcomes, and one real transfer
// between two backends over a unix socket in a temporary folder.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it, onTestFinished, vi } from "vitest";
import { Code, TtrpcError } from "ttrpc-es";
import { PhaseState, type StatedState, type TransferRequest, sessionNumber } from "ttrpc-es/migration";
import {
  createEndpointPair,
  createSimulatedBackend,
  DIRTY_RATE_ANNOTATION,
  type EndpointDescriptor,
  parseEndpointDescriptor,
  SimulatedBackend,
  type SimulatedBackendOptions,
  type TransferEvent,
} from "ttrpc-es/migration/simulated";
import { rejection, tempDir } from "../common.js";

const SESSION = "sim-backend-session";
const NUMBER = sessionNumber(SESSION);
const KiB = 1024;

/** A backend whose VM (if any) is stopped when the test ends, so no workload timer outlives it. */
function backend(options: SimulatedBackendOptions = {}): SimulatedBackend {
  const b = createSimulatedBackend(options);
  onTestFinished(() => b.vm?.stop());
  return b;
}

const source = (options: SimulatedBackendOptions = {}) =>
  backend({ sandbox: { sandboxId: "sb", memoryBytes: 64 * KiB, dirtyPagesPerSecond: 0 }, ...options });

const side = <O extends "Source" | "Destination">(origin: O) => ({
  sessionId: SESSION,
  sessionNumber: NUMBER,
  origin,
  signal: new AbortController().signal,
});

function state(memory = { sizeBytes: 64 * KiB, pageSize: 4096 }): StatedState {
  return {
    schemaVersion: 1,
    sandboxId: "sb",
    sessionId: SESSION,
    vm: { guestOs: "linux", processorCount: 1, memory },
    containers: [{ id: "c1", state: "running" }],
    annotations: { [DIRTY_RATE_ANNOTATION]: "0" },
  };
}

function endpoints(): { source: EndpointDescriptor; destination: EndpointDescriptor; path: string } {
  const path = join(tempDir(), "memory.sock");
  const pair = createEndpointPair({ transport: "unix", address: path, sessionNumber: NUMBER });
  return {
    source: parseEndpointDescriptor(pair.source, NUMBER),
    destination: parseEndpointDescriptor(pair.destination, NUMBER),
    path,
  };
}

function transferRequest(
  origin: "Source" | "Destination",
  endpoint: EndpointDescriptor,
  signal = new AbortController().signal,
): TransferRequest<EndpointDescriptor> {
  return {
    ...side(origin),
    endpoint,
    options: { Origin: origin, MemoryTransport: "TCP" },
    state: state(),
    signal,
    report: { phase: () => {}, blackoutExited: () => {} },
  };
}

/** A destination backend with its listening socket attached for SESSION, and that socket's path. */
async function listeningDestination(): Promise<{ dst: SimulatedBackend; path: string }> {
  const ends = endpoints();
  const dst = backend();
  await dst.attachSocket({ ...side("Destination"), endpoint: ends.destination });
  return { dst, path: ends.path };
}

describe("SimulatedBackend", () => {
  it("takes 1 to 16 channels, and refuses anything else with a RangeError", () => {
    for (const channels of [1, 16]) expect(() => new SimulatedBackend({ channels })).not.toThrow();
    for (const channels of [0, 17, 1.5, Number.NaN]) {
      expect(() => new SimulatedBackend({ channels })).toThrow(
        new RangeError(`channels ${channels} is not an integer from 1 to 16`),
      );
    }
  });

  it("exports nothing when it hosts no running sandbox", async () => {
    const request = { ...side("Source"), origin: "Source" as const, options: {} };
    const none = await rejection(backend().prepareSource(request), TtrpcError);
    expect([none.code, none.rawMessage]).toEqual([
      Code.FailedPrecondition,
      "no running sandbox to migrate on this shim",
    ]);
    const crashed = source();
    crashed.crash();
    expect((await rejection(crashed.prepareSource(request), TtrpcError)).code).toBe(Code.FailedPrecondition);
  });

  it("exports its VM's shape, containers and dirty rate", async () => {
    const b = backend({
      sandbox: {
        sandboxId: "sb",
        memoryBytes: 64 * KiB,
        pageSize: 8192,
        processorCount: 3,
        dirtyPagesPerSecond: 12,
        containers: [{ id: "c1", state: "running", pid: 9 }],
      },
    });
    const options = { Origin: "Source" as const, MemoryTransport: "TCP" as const };
    expect(await b.prepareSource({ ...side("Source"), origin: "Source", options })).toEqual({
      schemaVersion: 1,
      sandboxId: "sb",
      sessionId: SESSION,
      vm: { guestOs: "linux", processorCount: 3, memory: { sizeBytes: 64 * KiB, pageSize: 8192 } },
      containers: [{ id: "c1", state: "running", pid: 9 }],
      initOptions: options,
      annotations: { [DIRTY_RATE_ANNOTATION]: "12" },
    });
  });

  it("refuses an import while it hosts a live sandbox, and takes one after that sandbox stopped", async () => {
    const request = { ...side("Destination"), sandboxId: "other", state: state() };
    const b = source();
    const e = await rejection(b.importSandbox(request), TtrpcError);
    expect([e.code, e.rawMessage]).toEqual([Code.FailedPrecondition, 'this shim already hosts sandbox "sb"']);
    b.crash();
    await expect(b.importSandbox(request)).resolves.toBeUndefined();
    await expect(backend().importSandbox(request)).resolves.toBeUndefined();
  });

  it("answers a destination VM it cannot build with RESOURCE_EXHAUSTED, keeping the cause", async () => {
    const b = backend();
    const e = await rejection(
      b.prepareDestination({ ...side("Destination"), options: {}, state: state({ sizeBytes: 4000, pageSize: 1000 }) }),
      TtrpcError,
    );
    expect(e.code).toBe(Code.ResourceExhausted);
    expect(e.cause).toBeInstanceOf(RangeError);
    expect(e.rawMessage).toBe(`cannot create the destination VM: ${(e.cause as Error).message}`);
    expect(b.vm).toBeUndefined();
  });

  it("builds the destination VM from the imported state", async () => {
    const b = backend();
    const imported = state({ sizeBytes: 32 * KiB, pageSize: 4096 });
    await b.importSandbox({ ...side("Destination"), sandboxId: "imported-sb", state: imported });
    await b.prepareDestination({ ...side("Destination"), options: {}, state: state() });
    expect(b.vm?.sandboxId).toBe("imported-sb");
    expect(b.vm?.memory.sizeBytes).toBe(32 * KiB);
    expect(b.vm?.status).toBe("created");
  });

  it("fails a transfer on a shim without a VM, with the side's state", async () => {
    const { source: connect } = endpoints();
    const b = backend();
    for (const [origin, failed] of [
      ["Source", PhaseState.SOURCE_FAILED],
      ["Destination", PhaseState.DESTINATION_FAILED],
    ] as const) {
      expect(await b.transfer(transferRequest(origin, connect))).toEqual({
        ok: false,
        state: failed,
        message: "no VM on this shim",
      });
    }
  });

  it("throws when a listening side never bound its socket", async () => {
    const { destination } = endpoints();
    const b = source();
    await expect(b.transfer(transferRequest("Source", destination))).rejects.toThrow(
      new Error("no listener: CreateDuplicateSocket did not bind"),
    );
  });

  it("reports CANCELLED when the transfer is cancelled before it connected", async () => {
    const { source: connect } = endpoints();
    const b = source();
    const result = await b.transfer(transferRequest("Source", connect, AbortSignal.abort()));
    expect(result).toEqual({ ok: false, state: PhaseState.CANCELLED, message: "cancelled while connecting" });
  });

  it("reports whether a source RESUME recovered the VM", async () => {
    const finalize = { ...side("Source"), outcome: "source-resume" as const, from: "failed" as const };
    expect(await backend().finalize(finalize)).toEqual({ recovered: false });
    const running = source();
    expect(await running.finalize(finalize)).toEqual({ recovered: true });
    expect(running.vm?.status).toBe("running");
    const crashed = source();
    crashed.crash();
    expect(await crashed.finalize(finalize)).toEqual({ recovered: false });
    expect(crashed.vm?.status).toBe("stopped");
  });

  it("refuses a destination RESUME without a VM", async () => {
    const finalize = { ...side("Destination"), outcome: "destination-resume" as const, from: "completed" as const };
    const e = await rejection(backend().finalize(finalize), TtrpcError);
    expect([e.code, e.rawMessage]).toEqual([Code.FailedPrecondition, "no destination VM to resume"]);
  });

  it("binds a listening side's socket at attach, and Cleanup of the session closes it", async () => {
    const { dst, path } = await listeningDestination();
    expect(existsSync(path)).toBe(true);
    await dst.cleanup(side("Destination"));
    expect(existsSync(path)).toBe(false);
  });

  it("keeps a session's socket through another session's Cleanup, and closes it at its own", async () => {
    const { dst, path } = await listeningDestination();
    await dst.cleanup({ ...side("Destination"), sessionId: "another-session" });
    expect(existsSync(path)).toBe(true);
    await dst.cleanup(side("Destination"));
    expect(existsSync(path)).toBe(false);
  });

  it("closes the socket of a session that never cleaned up when the next session attaches", async () => {
    const { dst, path: first } = await listeningDestination();
    const next = endpoints();
    await dst.attachSocket({ ...side("Destination"), sessionId: "next-session", endpoint: next.destination });
    await vi.waitFor(() => expect(existsSync(first)).toBe(false), { timeout: 5000 });
    expect(existsSync(next.path)).toBe(true);
    await dst.cleanup({ ...side("Destination"), sessionId: "next-session" });
    expect(existsSync(next.path)).toBe(false);
  });

  it("moves a VM's memory from one backend to another over a unix socket", async () => {
    // No digest workers: this is about the backend's steps, not the hashing (block-digests.test).
    const src = source({ digestAhead: false });
    const dst = backend({ digestAhead: false });
    const events: TransferEvent["type"][] = [];
    dst.observe((e) => events.push(e.type));
    const ends = endpoints();
    const exported = await src.prepareSource({ ...side("Source"), origin: "Source", options: {} });
    await dst.importSandbox({ ...side("Destination"), sandboxId: exported.sandboxId, state: exported });
    await dst.prepareDestination({ ...side("Destination"), options: {}, state: exported });
    await dst.attachSocket({ ...side("Destination"), endpoint: ends.destination });
    await src.attachSocket({ ...side("Source"), endpoint: ends.source });
    const [a, b] = await Promise.all([
      src.transfer(transferRequest("Source", ends.source)),
      dst.transfer(transferRequest("Destination", ends.destination)),
    ]);
    expect(a).toMatchObject({ ok: true });
    expect(b).toMatchObject({ ok: true });
    expect(dst.vm!.memory.equals(src.vm!.memory)).toBe(true);
    expect(events.at(-1)).toBe("done");
    expect(dst.lastStats).toBeDefined();
    await src.finalize({ ...side("Source"), outcome: "source-stop", from: "completed" });
    await dst.finalize({ ...side("Destination"), outcome: "destination-resume", from: "completed" });
    expect(src.vm).toBeUndefined();
    expect(dst.vm?.status).toBe("running");
    await src.cleanup(side("Source"));
    await dst.cleanup(side("Destination"));
    expect(dst.vm?.status).toBe("running");
  });
});
