// `ttrpc-es call … Events/Forward` with no --proto, to the real containerd
// 1.7.24 (Debian trixie, unpacked by test/interop/nri/setup.sh), with the
// event's bare type URL kept (--keep-type-url), as containerd 1.6 needs it:
// `ctr events` decodes and prints the forwarded TaskExit.

import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { describe, expect, onTestFinished, test } from "vitest";
import { runCli, useCli } from "../cli/harness.js";
import { startContainerd } from "./containerd-daemon.js";
import { ensureNriPeers } from "./nri/nri-peers.js";

const cli = useCli();

describe("Events/Forward to the real containerd 1.7", () => {
  test("ctr events decodes the TaskExit forwarded with a bare @type", async () => {
    const peers = await ensureNriPeers();
    const ctd = await startContainerd(peers.containerd);
    const events = spawn(peers.ctr, ["--address", ctd.grpcSocket, "events"], { stdio: ["ignore", "pipe", "pipe"] });
    const exited = new Promise<void>((r) => events.once("exit", () => r()));
    onTestFinished(async () => {
      events.kill("SIGTERM");
      await exited;
    });
    let stderr = "";
    events.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    const firstLine = new Promise<string>((resolve) => createInterface({ input: events.stdout }).once("line", resolve));
    let seen: string | undefined;
    void firstLine.then((l) => (seen = l));

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
    for (let i = 0; seen === undefined && i < 200; i++) {
      const r = await runCli(cli(), [
        "call",
        `unix://${ctd.ttrpcSocket}`,
        "containerd.services.events.ttrpc.v1.Events/Forward",
        "--keep-type-url",
        "-d",
        data,
      ]);
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
    }
    const line = await firstLine;
    expect(line).toContain("default /tasks/exit");
    const json = JSON.parse(line.slice(line.indexOf("{"))) as Record<string, unknown>;
    expect(json).toMatchObject({ container_id: "c1", id: "c1", pid: 42, exit_status: 137 });
    expect(stderr).not.toContain("cannot unmarshal");
  }, 120_000);
});
