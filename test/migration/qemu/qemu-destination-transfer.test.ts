// The destination side of a QEMU migration against a scripted QMP peer on a
// real unix socket, standing in for the destination QEMU (scripted-qmp.ts
// says why): migrate-incoming, the phases its MIGRATION and RESUME events
// become in either order, and how a failure, a cancel and an exit end it.
// test/interop/qemu runs it against real QEMU.
import { describe, expect, it } from "vitest";
import { Phase, PhaseState } from "ttrpc-es/migration";
import { QmpCommandError, type QemuExit } from "ttrpc-es/migration/qemu";
import { runDestinationTransfer } from "../../../src/migration/qemu/qemu-destination-transfer.js";
import { deferred, fakeVm, recordingReporter, scriptedQmp, type QmpScript } from "./scripted-qmp.js";

const RESUMED_AT = { seconds: 1_700_000_123, microseconds: 456_000 };

async function destination(
  scripts: Record<string, QmpScript>,
  o: { stderr?: string; exit?: QemuExit; aborted?: boolean } = {},
) {
  const peer = await scriptedQmp(scripts);
  const qmp = await peer.client();
  const report = recordingReporter();
  const statuses: string[] = [];
  const ac = new AbortController();
  if (o.aborted) ac.abort();
  const exited = deferred<QemuExit>();
  if (o.exit !== undefined) exited.resolve(o.exit);
  const vm = fakeVm(qmp, { stderr: o.stderr ?? "", exited: exited.promise });
  const result = runDestinationTransfer({
    vm,
    uri: "tcp:127.0.0.1:4444",
    report,
    signal: ac.signal,
    observe: (s) => statuses.push(s),
  });
  return { peer, qmp, report, statuses, result, ac, exited };
}

describe("the destination transfer", () => {
  it("sends migrate-incoming with the URI; RESUME before completed ends the blackout at QEMU's time", async () => {
    const { peer, report, statuses, result } = await destination({
      "migrate-incoming": (c, p) => {
        p.reply(c);
        p.event("MIGRATION", { status: "setup" });
        p.event("MIGRATION", { status: "active" });
        p.event("MIGRATION", { status: "active" });
        p.event("RESUME", {}, RESUMED_AT);
        p.event("MIGRATION", { status: "completed" });
      },
    });
    expect(await result).toEqual({ ok: true });
    expect(peer.received[0]).toMatchObject({ execute: "migrate-incoming", arguments: { uri: "tcp:127.0.0.1:4444" } });
    // RESUME already said the guest runs here: no query-status.
    expect(peer.names()).toEqual(["migrate-incoming"]);
    expect(statuses).toEqual(["setup", "active", "active", "completed"]);
    expect(report.log).toEqual([
      `phase ${Phase.SETUP_DONE}`,
      `phase ${Phase.TRANSFER_IN_PROGRESS}`,
      `phase ${Phase.OFFLINE_DONE}`,
      `blackout ${JSON.stringify({ stoppedAtMs: 1_700_000_123_456 })}`,
    ]);
  });

  it("ends at completed when the guest already runs, timing the blackout's end itself", async () => {
    const before = Date.now();
    const { peer, report, result } = await destination({
      "migrate-incoming": (c, p) => {
        p.reply(c);
        p.event("MIGRATION", { status: "completed" });
      },
      "query-status": (c, p) => p.reply(c, { status: "running" }),
    });
    expect(await result).toEqual({ ok: true });
    expect(peer.names()).toEqual(["migrate-incoming", "query-status"]);
    expect(report.log).toHaveLength(2);
    expect(report.log[0]).toBe(`phase ${Phase.OFFLINE_DONE}`);
    const at = (JSON.parse(report.log[1]!.slice("blackout ".length)) as { stoppedAtMs: number }).stoppedAtMs;
    expect(at).toBeGreaterThanOrEqual(before);
    expect(at).toBeLessThanOrEqual(Date.now());
  });

  it("waits for RESUME after completed while the guest is not running yet, reporting OFFLINE_DONE once", async () => {
    const { report, result } = await destination({
      "migrate-incoming": (c, p) => {
        p.reply(c);
        p.event("MIGRATION", { status: "completed" });
      },
      "query-status": (c, p) => {
        p.reply(c, { status: "paused" });
        p.event("RESUME", {}, RESUMED_AT);
      },
    });
    expect(await result).toEqual({ ok: true });
    expect(report.log).toEqual([
      `phase ${Phase.OFFLINE_DONE}`,
      `blackout ${JSON.stringify({ stoppedAtMs: 1_700_000_123_456 })}`,
    ]);
  });

  it("fails with QEMU's stderr when the incoming migration fails", async () => {
    const { result } = await destination(
      {
        "migrate-incoming": (c, p) => {
          p.reply(c);
          p.event("MIGRATION", { status: "active" });
          p.event("MIGRATION", { status: "failed" });
        },
      },
      { stderr: "qemu: load of migration failed" },
    );
    expect(await result).toEqual({
      ok: false,
      state: PhaseState.DESTINATION_FAILED,
      message: "incoming migration failed: qemu: load of migration failed",
    });
  });

  it("ends cancelled when its signal aborts", async () => {
    const { result } = await destination({}, { aborted: true });
    expect(await result).toEqual({ ok: false, state: PhaseState.CANCELLED, message: "cancelled" });
  });

  it.each([
    ["exits by itself after a cancel", true, { code: 1, signal: null }, PhaseState.CANCELLED],
    ["exits without a cancel", false, { code: 1, signal: null }, PhaseState.DESTINATION_FAILED],
    ["is killed after a cancel", true, { code: null, signal: "SIGKILL" }, PhaseState.DESTINATION_FAILED],
  ] as const)("reports a QEMU that %s", async (_what, cancel, exit, state) => {
    const run = await destination({
      "migrate-incoming": (c, p) => {
        p.reply(c);
        p.event("MIGRATION", { status: "active" });
      },
    });
    run.peer.drop();
    // The queue holds "closed" once the monitor's close settles; an abort now comes after it.
    await run.qmp.closed;
    if (cancel) run.ac.abort();
    run.exited.resolve(exit);
    expect(await run.result).toEqual({
      ok: false,
      state,
      message: `the destination QEMU exited (status ${exit.code ?? exit.signal}): no message`,
    });
  });

  it("names QEMU's stderr when it exits", async () => {
    const run = await destination({}, { stderr: "qemu: bye", exit: { code: 1, signal: null } });
    run.peer.drop();
    expect(await run.result).toMatchObject({ message: "the destination QEMU exited (status 1): qemu: bye" });
  });

  it("reports a QEMU gone when migrate-incoming finds the monitor closing", async () => {
    const run = await destination(
      { "migrate-incoming": (_c, p) => p.drop() },
      { stderr: "", exit: { code: 1, signal: null } },
    );
    expect(await run.result).toMatchObject({ ok: false, state: PhaseState.DESTINATION_FAILED });
  });

  it("throws a refused migrate-incoming while the monitor is up", async () => {
    const run = await destination({ "migrate-incoming": (c, p) => p.fail(c, "GenericError", "no -incoming defer") });
    await expect(run.result).rejects.toBeInstanceOf(QmpCommandError);
  });
});
