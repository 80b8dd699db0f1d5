// Helpers of the tests that migrate with the simulated backend: a reference
// shim on a real unix socket, the phases a side reported, and a fresh path
// for the memory-transfer socket.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { onTestFinished } from "vitest";
import {
  Phase,
  PhaseState,
  createMigrationServer,
  type MigrationEvent,
  type MigrationResult,
} from "ttrpc-es/migration";
import { createSimulatedBackend, type SimulatedBackendOptions } from "../../src/migration/simulated/index.js";
import { tempDir } from "../common.js";

export const MiB = 1024 * 1024;

/** A shim with a simulated backend, closed after the test. */
export async function simulatedShim(name: string, options: SimulatedBackendOptions = {}) {
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

export type SimulatedShim = Awaited<ReturnType<typeof simulatedShim>>;

/** The phases one side reported, as "PHASE" or "PHASE/STATE" when not SUCCESS. */
export function phases(
  events: readonly MigrationEvent[] | MigrationResult["notifications"],
  side: "source" | "destination",
): string[] {
  return events.flatMap((e) =>
    e.type === "notification" && e.side === side
      ? [`${Phase[e.phase]}${e.state === PhaseState.SUCCESS ? "" : `/${PhaseState[e.state]}`}`]
      : [],
  );
}

/** A fresh path for the memory-transfer socket; `leftOver` says whether a listener left its file behind. */
export function transferSocket(): { path: string; leftOver: () => boolean } {
  const path = join(tempDir(), "memory.sock");
  return { path, leftOver: () => existsSync(path) };
}
