// The QEMU backend against real QEMU 7.2 processes (TCG here): the reference
// shims and the orchestrator, unchanged, move a running guest that keeps
// dirtying and verifying its memory. One VM pair at a time.
import { beforeAll, describe, expect, it } from "vitest";
import { MemoryTransport, migrate } from "ttrpc-es/migration";
import { tempDir } from "../../common.js";
import { ensureQemuGuest, guestSpec, parseTick, startQemuShim, type QemuShim } from "./qemu-shims.js";

beforeAll(async () => {
  await ensureQemuGuest();
});

/** Boots the source guest and waits for its first verified tick: it runs and its memory checks pass. */
async function bootSource(shim: QemuShim): Promise<void> {
  const vm = await shim.backend.start();
  await vm.serial.waitFor((l) => parseTick(l)?.verify === "ok");
}

/** Waits until the destination's guest prints a verified tick after the source's last one. */
async function destinationContinues(source: QemuShim, destination: QemuShim): Promise<{ last: number; next: number }> {
  const last = source.ticks.at(-1)!.n;
  const vm = destination.backend.vm!;
  const line = await vm.serial.waitFor((l) => {
    const t = parseTick(l);
    return t !== undefined && t.n > last && t.verify === "ok";
  });
  return { last, next: parseTick(line)!.n };
}

describe("QEMU backend: live migration of a running guest", () => {
  it("migrates over a unix socket; the guest goes on counting and verifying on the destination", async () => {
    const dir = tempDir();
    const source = await startQemuShim("source", dir, { vm: guestSpec() });
    const destination = await startQemuShim("destination", dir, {});
    await bootSource(source);
    const result = await migrate({
      source: source.address,
      destination: destination.address,
      transport: "unix",
      transferAddress: `${dir}/memory.sock`,
      initOptions: { memoryTransport: MemoryTransport.TCP },
    });
    expect(result.error).toBeUndefined();
    expect(result.ok).toBe(true);
    const { last, next } = await destinationContinues(source, destination);
    expect(next).toBeGreaterThan(last);
    expect(destination.ticks.filter((t) => t.verify === "BAD")).toEqual([]);
    expect(source.backend.vm).toBeUndefined();
    expect(result.blackoutMs).toBeGreaterThan(0);
  });
});
