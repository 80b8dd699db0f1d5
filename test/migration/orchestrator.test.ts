import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import {
  MemoryTransport,
  Phase,
  PhaseState,
  createMigrationServer,
} from "ttrpc-es/migration";
import { migrate, type MigrationEvent } from "../../src/migration/orchestrator.js";
import { createSimulatedBackend, type SimulatedBackend, type SimulatedBackendOptions } from "../../src/migration/simulated/index.js";
import { tempDir } from "../common.js";

const MiB = 1024 * 1024;

async function shim(name: string, options: SimulatedBackendOptions = {}) {
  const backend = createSimulatedBackend(options);
  const { server, service } = createMigrationServer({ backend });
  const address = await server.listen(`unix:${join(tempDir(), `${name}.sock`)}`);
  onTestFinished(async () => {
    await service.close();
    await server.close();
    backend.vm?.stop();
  });
  return { backend, server, service, address };
}

function phases(events: readonly MigrationEvent[], side: "source" | "destination") {
  return events.filter((e) => e.type === "notification" && e.side === side).map((e) => (e.type === "notification" ? Phase[e.phase] : ""));
}

describe("orchestrator with the simulated backend", () => {
  it("migrates a running sandbox; the destination's memory equals the source's", async () => {
    const src = await shim("src", { sandbox: { sandboxId: "sb1", memoryBytes: 8 * MiB, dirtyPagesPerSecond: 20000 } });
    const dst = await shim("dst");
    const sourceVm = src.backend.vm!;
    // At the destination's verified end (before it resumes), both images are byte-identical.
    let identical: boolean | undefined;
    dst.backend.observe((e) => {
      if (e.type === "done") identical = dst.backend.vm!.memory.equals(sourceVm.memory);
    });
    const events: MigrationEvent[] = [];
    const result = await migrate({
      source: src.address,
      destination: dst.address,
      transferAddress: join(tempDir(), "mem.sock"),
      initOptions: { memoryTransport: MemoryTransport.TCP, checksumVerification: true },
      onEvent: (e) => events.push(e),
    });
    expect(result.error).toBeUndefined();
    expect(result.ok).toBe(true);
    expect(phases(events, "source")).toEqual(["SETUP_DONE", "TRANSFER_IN_PROGRESS", "BLACKOUT_STARTED", "OFFLINE_DONE", "BLACKOUT_EXITED", "DONE"]);
    expect(phases(events, "destination")).toEqual(["SETUP_DONE", "TRANSFER_IN_PROGRESS", "BLACKOUT_STARTED", "OFFLINE_DONE", "BLACKOUT_EXITED", "DONE"]);
    expect(result.blackoutMs).toBeTypeOf("number");
    // The source was stopped, the destination runs the same memory.
    expect(src.backend.vm).toBeUndefined();
    const destVm = dst.backend.vm!;
    expect(destVm.status).toBe("running");
    expect(identical).toBe(true);
    expect(sourceVm.memory.digest()).toBe(src.backend.lastStats!.digest);
    expect(dst.backend.lastStats!.digest).toBe(src.backend.lastStats!.digest);
    expect(src.service.session.state).toBe("Idle");
    expect(dst.service.session.state).toBe("Idle");
  });
});
