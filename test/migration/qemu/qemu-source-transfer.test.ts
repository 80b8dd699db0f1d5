// The source side of a QEMU migration against a scripted QMP peer on a real
// unix socket, standing in for the source QEMU (scripted-qmp.ts says why):
// which commands it sends, how QEMU's events become phases, the pass limit,
// the threshold cancel, retries and failures. test/interop/qemu runs it
// against real QEMU.
import { describe, expect, it, onTestFinished, vi } from "vitest";
import { Phase, PhaseState } from "ttrpc-es/migration";
import type { QemuExit, SourceLimits, SourceProgress } from "ttrpc-es/migration/qemu";
import { QmpCommandError } from "ttrpc-es/migration/qemu";
import { runSourceTransfer } from "../../../src/migration/qemu/qemu-source-transfer.js";
import { fakeTimeouts } from "../../common.js";
import { deferred, fakeVm, recordingReporter, scriptedQmp, type QmpScript } from "./scripted-qmp.js";

interface Run {
  scripts: Record<string, QmpScript>;
  limits?: SourceLimits;
  retryConnect?: boolean;
  stderr?: string;
  exit?: QemuExit;
  /** Called with each progress as it is observed. */
  onProgress?: (p: SourceProgress) => void;
}

async function source(r: Run) {
  const peer = await scriptedQmp(r.scripts);
  const qmp = await peer.client();
  const report = recordingReporter();
  const observed: SourceProgress[] = [];
  const ac = new AbortController();
  const vm = fakeVm(qmp, {
    ...(r.stderr === undefined ? {} : { stderr: r.stderr }),
    ...(r.exit === undefined ? {} : { exit: r.exit }),
  });
  const result = runSourceTransfer({
    vm,
    uri: "unix:/run/migration.sock",
    retryConnect: r.retryConnect ?? false,
    limits: r.limits ?? {},
    report,
    signal: ac.signal,
    observe: (p) => {
      observed.push(p);
      r.onProgress?.(p);
    },
  });
  return { peer, report, observed, result, ac };
}

const FULL_STATS = {
  status: "completed",
  "total-time": 900,
  downtime: 42,
  ram: { transferred: 1000, mbps: 8.5, "dirty-sync-count": 3 },
};

/** Answers query-migrate with each of `answers` in turn, the last one from then on. */
function answers(...list: object[]): QmpScript {
  let i = 0;
  return (c, p) => p.reply(c, list[Math.min(i++, list.length - 1)]);
}

/** Replies to the command, then sends each event (name and data) as QEMU would after it. */
function replyThen(...events: [name: string, data?: Record<string, unknown>][]): QmpScript {
  return (c, p) => {
    p.reply(c);
    for (const [name, data] of events) p.event(name, data);
  };
}

const status = (s: string) => ({ type: "status", status: s });

describe("the source transfer", () => {
  it("sends migrate with the URI and maps setup, active, STOP and completed onto the phases", async () => {
    const { peer, report, observed, result } = await source({
      scripts: {
        migrate: replyThen(
          ["MIGRATION", { status: "setup" }],
          ["MIGRATION", { status: "active" }],
          ["MIGRATION_PASS", { pass: 1 }],
          ["MIGRATION", { status: "active" }],
          ["STOP"],
          ["MIGRATION", { status: "device" }],
          ["MIGRATION", { status: "completed" }],
        ),
        "query-migrate": answers({ "total-time": 0, downtime: 5 }, { "total-time": 7 }, FULL_STATS),
      },
    });
    expect(await result).toEqual({ ok: true });
    expect(peer.received[0]).toMatchObject({ execute: "migrate", arguments: { uri: "unix:/run/migration.sock" } });
    // completed shows before QEMU fills in total-time and downtime: asked until both are there.
    expect(peer.names()).toEqual(["migrate", "query-migrate", "query-migrate", "query-migrate"]);
    expect(report.log).toEqual([
      `phase ${Phase.SETUP_DONE}`,
      `phase ${Phase.TRANSFER_IN_PROGRESS}`,
      `phase ${Phase.BLACKOUT_STARTED}`,
      `phase ${Phase.OFFLINE_DONE}`,
      'blackout {"durationMs":42}',
    ]);
    expect(observed).toEqual([
      status("setup"),
      status("active"),
      { type: "pass", pass: 1 },
      status("active"),
      status("device"),
      status("completed"),
      {
        type: "done",
        stats: {
          status: "completed",
          totalMs: 900,
          downtimeMs: 42,
          transferredBytes: 1000,
          mbps: 8.5,
          passes: 3,
          forcedSwitchover: false,
        },
      },
    ]);
  });

  it("reports zeros for what QEMU's final statistics leave out", async () => {
    const { observed, result } = await source({
      scripts: {
        migrate: replyThen(["MIGRATION", { status: "completed" }]),
        "query-migrate": answers({ "total-time": 5, downtime: 0 }),
      },
    });
    expect(await result).toEqual({ ok: true });
    expect(observed.at(-1)).toEqual({
      type: "done",
      stats: {
        status: "completed",
        totalMs: 5,
        downtimeMs: 0,
        transferredBytes: 0,
        mbps: 0,
        passes: 0,
        forcedSwitchover: false,
      },
    });
  });

  it("forces the switchover past the pass limit by raising downtime-limit, once", async () => {
    const { peer, observed, result } = await source({
      limits: { maxPasses: 2 },
      scripts: {
        migrate: (c, p) => {
          p.reply(c);
          p.event("MIGRATION", { status: "active" });
          for (const pass of [1, 2, 3]) p.event("MIGRATION_PASS", { pass });
        },
        "query-migrate": answers({ "expected-downtime": 500 }, FULL_STATS),
        "migrate-set-parameters": replyThen(["MIGRATION_PASS", { pass: 4 }], ["MIGRATION", { status: "completed" }]),
      },
    });
    expect(await result).toEqual({ ok: true });
    // Passes within the limit ask QEMU nothing; only the first one over it does.
    expect(peer.names()).toEqual(["migrate", "query-migrate", "migrate-set-parameters", "query-migrate"]);
    expect(peer.received[2]!.arguments).toEqual({ "downtime-limit": 2_000_000 });
    expect(observed.filter((p) => p.type !== "status" && p.type !== "done")).toEqual([
      { type: "pass", pass: 1 },
      { type: "pass", pass: 2 },
      { type: "pass", pass: 3, expectedDowntimeMs: 500 },
      { type: "forced", pass: 3 },
      { type: "pass", pass: 4 },
    ]);
    expect(observed.at(-1)).toMatchObject({ type: "done", stats: { forcedSwitchover: true } });
  });

  it("forces rather than cancels when the projected blackout is at the threshold", async () => {
    const { peer, observed, result } = await source({
      limits: { maxPasses: 1, cancelThresholdMs: 300 },
      scripts: {
        migrate: replyThen(["MIGRATION_PASS", { pass: 2 }]),
        "query-migrate": answers({ "expected-downtime": 300 }, FULL_STATS),
        "migrate-set-parameters": replyThen(["MIGRATION", { status: "completed" }]),
      },
    });
    expect(await result).toEqual({ ok: true });
    expect(peer.names()).not.toContain("migrate_cancel");
    expect(observed).toContainEqual({ type: "forced", pass: 2 });
  });

  it("cancels when the projected blackout is over the threshold, and says so", async () => {
    const { peer, observed, result } = await source({
      limits: { maxPasses: 1, cancelThresholdMs: 300 },
      scripts: {
        migrate: replyThen(["MIGRATION_PASS", { pass: 2 }]),
        "query-migrate": answers({ "expected-downtime": 301 }),
        migrate_cancel: (c, p) => {
          p.reply(c);
          // A pass still on the wire while cancelling is not the limit's business any more.
          p.event("MIGRATION_PASS", { pass: 3 });
          p.event("MIGRATION", { status: "cancelled" });
        },
      },
    });
    expect(await result).toEqual({
      ok: false,
      state: PhaseState.CANCELLED,
      message: "projected blackout 301 ms is over the 300 ms threshold after 1 passes",
    });
    expect(peer.names()).toEqual(["migrate", "query-migrate", "migrate_cancel"]);
    expect(observed.filter((p) => p.type !== "status")).toEqual([
      { type: "pass", pass: 2, expectedDowntimeMs: 301 },
      { type: "threshold-cancel", pass: 2, expectedDowntimeMs: 301 },
      { type: "pass", pass: 3 },
    ]);
  });

  it("sends migrate_cancel once when aborted, and ends cancelled with the default message", async () => {
    const active = deferred();
    const run = await source({
      onProgress: (p) => {
        if (p.type === "status" && p.status === "active") active.resolve();
      },
      scripts: {
        migrate: replyThen(["MIGRATION", { status: "active" }]),
        // QEMU refuses a cancel at a bad moment with an error: not the transfer's failure.
        migrate_cancel: (c, p) => {
          p.fail(c, "GenericError", "not now");
          p.event("MIGRATION", { status: "cancelled" });
        },
      },
    });
    await active.promise;
    run.ac.abort();
    expect(await run.result).toEqual({
      ok: false,
      state: PhaseState.CANCELLED,
      message: "migration cancelled; the source VM runs on",
    });
    expect(run.peer.names()).toEqual(["migrate", "migrate_cancel"]);
  });

  it.each([
    ["QEMU's error-desc", { "error-desc": "Unable to write" }, "qemu: stderr", "Unable to write"],
    ["QEMU's stderr without an error-desc", { "error-desc": "" }, "qemu: stderr", "qemu: stderr"],
    ["no reason", {}, "", "no reason given"],
  ])("fails with %s as the reason", async (_what, answer, stderr, why) => {
    const { peer, result } = await source({
      stderr,
      scripts: {
        migrate: replyThen(["MIGRATION", { status: "failed" }]),
        "query-migrate": answers(answer),
      },
    });
    expect(await result).toEqual({
      ok: false,
      state: PhaseState.SOURCE_FAILED,
      message: `QEMU migration failed: ${why}`,
    });
    expect(peer.names()).toEqual(["migrate", "query-migrate"]);
  });

  it("falls back to stderr when query-migrate itself fails", async () => {
    const { result } = await source({
      stderr: "qemu: gone wrong",
      scripts: {
        migrate: replyThen(["MIGRATION", { status: "failed" }]),
        "query-migrate": (c, p) => p.fail(c, "GenericError", "no"),
      },
    });
    expect(await result).toMatchObject({ message: "QEMU migration failed: qemu: gone wrong" });
  });

  describe("retrying migrate in URI mode", () => {
    function retryRun(secondAnswer: "completed" | "none") {
      fakeTimeouts();
      onTestFinished(() => void vi.useRealTimers());
      const failed = deferred();
      let migrations = 0;
      const started = source({
        retryConnect: true,
        onProgress: (p) => {
          if (p.type === "status" && p.status === "failed") failed.resolve();
        },
        scripts: {
          migrate: (c, p) => {
            p.reply(c);
            migrations++;
            if (migrations === 1) p.event("MIGRATION", { status: "failed" });
            else if (secondAnswer === "completed") {
              p.event("MIGRATION", { status: "active" });
              p.event("MIGRATION", { status: "completed" });
            }
          },
          "query-migrate": answers({ ...FULL_STATS, "error-desc": "Connection refused" }),
        },
      });
      return { started, failed: failed.promise };
    }

    it("sends migrate again 100 ms after a failure before active (the destination may not listen yet)", async () => {
      const { started, failed } = retryRun("completed");
      const { peer, result } = await started;
      await failed;
      await vi.advanceTimersByTimeAsync(100);
      expect(await result).toEqual({ ok: true });
      expect(peer.names()).toEqual(["migrate", "migrate", "query-migrate"]);
    });

    it("gives up as cancelled when aborted during the retry's wait", async () => {
      const { started, failed } = retryRun("none");
      const { peer, result, ac } = await started;
      await failed;
      ac.abort();
      await vi.advanceTimersByTimeAsync(100);
      expect(await result).toEqual({
        ok: false,
        state: PhaseState.CANCELLED,
        message: "cancelled: Connection refused",
      });
      expect(peer.names()).toEqual(["migrate", "query-migrate"]);
    });
  });

  it("does not retry a failure once the migration was active", async () => {
    const { peer, result } = await source({
      retryConnect: true,
      scripts: {
        migrate: replyThen(["MIGRATION", { status: "active" }], ["MIGRATION", { status: "failed" }]),
        "query-migrate": answers({ "error-desc": "Broken pipe" }),
      },
    });
    expect(await result).toEqual({
      ok: false,
      state: PhaseState.SOURCE_FAILED,
      message: "QEMU migration failed: Broken pipe",
    });
    expect(peer.names()).toEqual(["migrate", "query-migrate"]);
  });

  it.each([
    [{ code: 1, signal: null }, "exit 1"],
    [{ code: null, signal: "SIGKILL" }, "exit SIGKILL"],
    [undefined, "exit unknown"],
  ] as const)("reports the source QEMU gone when its monitor closes (%j)", async (exit, said) => {
    const { result } = await source({
      stderr: "qemu: killed",
      ...(exit === undefined ? {} : { exit }),
      scripts: {
        migrate: (c, p) => {
          p.reply(c);
          p.event("MIGRATION", { status: "active" });
          p.drop();
        },
      },
    });
    expect(await result).toEqual({
      ok: false,
      state: PhaseState.SOURCE_FAILED,
      message: `the source QEMU is gone (${said}): qemu: killed`,
    });
  });

  it("reports a QEMU that dies while cancelling as cancelled", async () => {
    const active = deferred();
    const { result, ac } = await source({
      onProgress: (p) => {
        if (p.type === "status" && p.status === "active") active.resolve();
      },
      scripts: {
        migrate: replyThen(["MIGRATION", { status: "active" }]),
        migrate_cancel: (_c, p) => p.drop(),
      },
    });
    await active.promise;
    ac.abort();
    expect(await result).toMatchObject({ ok: false, state: PhaseState.CANCELLED });
  });

  it("throws a refused migrate while the monitor is up", async () => {
    const { result } = await source({
      scripts: { migrate: (c, p) => p.fail(c, "GenericError", "There's a migration process in progress") },
    });
    await expect(result).rejects.toBeInstanceOf(QmpCommandError);
  });
});
