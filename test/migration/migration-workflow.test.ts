// The whole live-migration workflow between a source and a destination
// reference shim, over real unix sockets with the prebuilt client.
import { describe, expect, it, onTestFinished, vi } from "vitest";
import { FinalizeAction, SAVE_PAYLOAD_TYPE_URL, decodeSandboxConfig } from "ttrpc-es/migration";
import {
  INIT,
  Phase,
  PhaseState,
  SESSION,
  SUCCESSFUL_PHASES,
  listen,
  phases,
  startShim,
  testingEndpoint,
} from "./shim.js";

/** 2026-01-02T03:04:05.678Z, for the blackout's stop stamp. */
const STOPPED_AT = Date.UTC(2026, 0, 2, 3, 4, 5, 678);

describe("Migration workflow", () => {
  it("moves a sandbox from a source shim to a destination shim with Notifications open", async () => {
    const src = await startShim({ blackoutMs: 12.4 });
    const dst = await startShim({ blackoutMs: 7 });

    const { config } = await src.client.prepareAndExportSandbox({ sessionId: SESSION, initOptions: INIT });
    // hcsshim's save envelope, its VM payload the StatedState.
    expect(config?.typeUrl).toBe(SAVE_PAYLOAD_TYPE_URL);
    const exported = decodeSandboxConfig(config);
    expect(exported.sessionId).toBe(SESSION);
    expect(exported.sandboxId).toBe("sandbox-1");
    expect(src.service.session.state).toBe("SourceExported");

    await dst.client.importSandbox({ sessionId: SESSION, sandboxId: "sandbox-dst", config: config! });
    expect(dst.service.session.state).toBe("DestinationImported");
    await dst.client.prepareSandbox({ sessionId: SESSION, initOptions: INIT });
    expect(dst.service.session.state).toBe("DestinationPrepared");

    await src.client.createDuplicateSocket({ sessionId: SESSION, protocolInfo: testingEndpoint("src") });
    await dst.client.createDuplicateSocket({ sessionId: SESSION, protocolInfo: testingEndpoint("dst") });
    expect(src.service.session.state).toBe("SocketReady");
    expect(src.backend.attached).toEqual({ name: "src" });

    const srcEvents = await listen(src);
    const dstEvents = await listen(dst);
    await vi.waitFor(() => expect(src.service.session.subscribers + dst.service.session.subscribers).toBe(2), {
      timeout: 10_000,
    });

    // The backend stamps the guest's stop with Date.now(): a stopped Date
    // makes the stamp on the wire exactly this instant.
    vi.useFakeTimers({ toFake: ["Date"], now: STOPPED_AT });
    onTestFinished(() => void vi.useRealTimers());
    await src.client.transferSandbox({ sessionId: SESSION });
    await dst.client.transferSandbox({ sessionId: SESSION });
    await srcEvents.until(Phase.DONE);
    await dstEvents.until(Phase.DONE);
    expect(src.service.session.state).toBe("TransferCompleted");
    expect(dst.service.session.state).toBe("TransferCompleted");

    const expected = SUCCESSFUL_PHASES;
    expect(phases(srcEvents.items)).toEqual(expected);
    expect(phases(dstEvents.items)).toEqual(expected);
    expect(srcEvents.items.map((r) => r.messageId)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(srcEvents.items.every((r) => r.notification!.origin === 1)).toBe(true); // ORIGIN_SOURCE
    expect(dstEvents.items.every((r) => r.notification!.origin === 2)).toBe(true); // ORIGIN_DESTINATION

    const exited = srcEvents.items[4]!.notification!.phaseDetails;
    expect(exited.case).toBe("blackoutExited");
    expect(exited.value!.blackoutDurationMilliseconds).toBe(12n);
    const stop = exited.value!.blackoutStopTimestamp!;
    expect([stop.seconds, stop.nanos]).toEqual([BigInt(Math.floor(STOPPED_AT / 1000)), (STOPPED_AT % 1000) * 1e6]);
    // Only BLACKOUT_EXITED carries details.
    expect(srcEvents.items.filter((r) => r.notification!.phaseDetails.case !== undefined)).toHaveLength(1);
    // start_time is the notifier's, the same on every message; update_time moves on.
    const start = srcEvents.items[0]!.startTime!;
    expect(
      srcEvents.items.every((r) => r.startTime!.seconds === start.seconds && r.startTime!.nanos === start.nanos),
    ).toBe(true);
    // Readings of one monotonic clock, compared with each other (no bound on how far apart).
    const updates = srcEvents.items.map((r) => Number(r.updateTime!.seconds) * 1e9 + r.updateTime!.nanos);
    expect([...updates].sort((a, b) => a - b)).toEqual(updates);
    expect(updates[0]).toBeGreaterThanOrEqual(Number(start.seconds) * 1e9 + start.nanos);

    // Success: the destination runs, the source tears down.
    await dst.client.finalizeSandbox({ sessionId: SESSION, action: FinalizeAction.RESUME });
    await src.client.finalizeSandbox({ sessionId: SESSION, action: FinalizeAction.STOP });
    expect(dst.backend.calls.find((c) => c.operation === "finalize")?.outcome).toBe("destination-resume");
    expect(src.backend.calls.find((c) => c.operation === "finalize")?.outcome).toBe("source-stop");

    await src.client.cleanup({ sessionId: SESSION });
    await dst.client.cleanup({ sessionId: SESSION });
    // Cleanup ends the open streams cleanly.
    await srcEvents.done;
    await dstEvents.done;
    expect(src.service.session.state).toBe("Idle");
    expect(dst.service.session.state).toBe("Idle");
    expect(src.backend.attached).toBeUndefined();

    expect(src.backend.calls.map((c) => c.operation)).toEqual([
      "prepareSource",
      "parseEndpoint",
      "attachSocket",
      "transfer",
      "finalize",
      "cleanup",
    ]);
    expect(dst.backend.calls.map((c) => c.operation)).toEqual([
      "importSandbox",
      "prepareDestination",
      "parseEndpoint",
      "attachSocket",
      "transfer",
      "finalize",
      "resume",
      "cleanup",
    ]);
  });

  it("runs a second session on the same shim after Cleanup", async () => {
    const src = await startShim();
    for (const session of ["first", "second"]) {
      await src.client.prepareAndExportSandbox({ sessionId: session, initOptions: INIT });
      await src.client.createDuplicateSocket({ sessionId: session, protocolInfo: testingEndpoint("s") });
      const events = await listen(src, session);
      await src.client.transferSandbox({ sessionId: session });
      await events.until(Phase.DONE);
      // A new session has a new notifier: its counter starts again.
      expect(events.items.at(-1)!.messageId).toBeLessThanOrEqual(6);
      await src.client.finalizeSandbox({ sessionId: session, action: FinalizeAction.STOP });
      await src.client.cleanup({ sessionId: session });
      await events.done;
    }
    expect(src.service.session.state).toBe("Idle");
  });

  it("waits for the socket when TransferSandbox comes first (SocketWaiting)", async () => {
    const dst = await startShim();
    await dst.client.importSandbox({ sessionId: SESSION, sandboxId: "d", config: await exportConfig() });
    await dst.client.prepareSandbox({ sessionId: SESSION, initOptions: INIT });
    const events = await listen(dst);
    await dst.client.transferSandbox({ sessionId: SESSION, timeout: { seconds: 60n, nanos: 0 } });
    expect(dst.service.session.state).toBe("SocketWaiting");
    // A second Transfer while waiting is a no-op.
    await dst.client.transferSandbox({ sessionId: SESSION });
    expect(dst.service.session.state).toBe("SocketWaiting");
    await dst.client.createDuplicateSocket({ sessionId: SESSION, protocolInfo: testingEndpoint("late") });
    await events.until(Phase.DONE);
    expect(dst.service.session.state).toBe("TransferCompleted");
    expect(dst.backend.calls.filter((c) => c.operation === "transfer")).toHaveLength(1);
    expect(PhaseState[events.items.at(-1)!.notification!.state]).toBe("SUCCESS");
  });
});

async function exportConfig() {
  const src = await startShim();
  return (await src.client.prepareAndExportSandbox({ sessionId: SESSION, initOptions: INIT })).config!;
}
