// `ttrpc-es call … Events/Forward` with no --proto, to the real containerd
// 1.6.20, 1.7.24 and 2.1.9 (Debian bookworm, trixie and sid, unpacked by
// test/interop/shim/setup.sh), with the event's bare type URL kept
// (--keep-type-url), as containerd 1.6 needs it: 1.6 registers its events under
// bare names. `ctr events` of each decodes and prints the forwarded TaskExit.

import { describe, expect, onTestFinished, test } from "vitest";
import { runCli, useCli } from "../cli/harness.js";
import { VERSIONS, ensureContainerd, startContainerd } from "./shim/containerd-run.js";

const cli = useCli();

describe.each(VERSIONS)("Events/Forward to the real containerd %s", (version) => {
  test("ctr events decodes the TaskExit forwarded with a bare @type", async () => {
    await ensureContainerd();
    const ctd = await startContainerd(version);
    onTestFinished(() => ctd.stop());
    const events = ctd.spawnCtr(["events"]);
    const exited = new Promise<void>((r) => events.child.once("exit", () => r()));
    onTestFinished(async () => {
      events.child.kill("SIGTERM");
      await exited;
    });
    // A whole line (the text after the last newline may still be arriving).
    const seen = () =>
      events
        .output()
        .split("\n")
        .slice(0, -1)
        .find((l) => l.includes("/tasks/exit"));

    const data = JSON.stringify({
      envelope: {
        timestamp: "2026-01-01T00:00:00Z",
        namespace: "default",
        topic: "/tasks/exit",
        event: { "@type": "containerd.events.TaskExit", containerId: "c1", id: "c1", pid: 42, exitStatus: 137 },
      },
    });
    // ctr subscribes some time after it starts, and an event before that is
    // not delivered to it: forward until it prints one (each call is answered).
    for (let i = 0; seen() === undefined && i < 200; i++) {
      const r = await runCli(cli(), [
        "call",
        `unix://${ctd.address}.ttrpc`,
        "containerd.services.events.ttrpc.v1.Events/Forward",
        "--keep-type-url",
        "-d",
        data,
      ]);
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
    }
    const line = seen();
    expect(line, `no /tasks/exit from ctr events:\n${events.output()}`).toBeDefined();
    expect(line).toContain("default /tasks/exit");
    const json = JSON.parse(line!.slice(line!.indexOf("{"))) as Record<string, unknown>;
    expect(json).toMatchObject({ container_id: "c1", id: "c1", pid: 42, exit_status: 137 });
  }, 120_000);
});
