// The other direction: Go's own plugin SDK (containerd/nri 0.6.1 pkg/stub,
// Debian trixie) talks to a TypeScript runtime built on our multiplexer. The
// Go side's mux and bufio reader read what our splitter wrote, and ours read
// what Go's bufio writer wrote.
import { join } from "node:path";
import { Code, TtrpcError } from "ttrpc-es";
import { Event, eventMask } from "ttrpc-es/nri";
import { beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { tempDir } from "../../common.js";
import { startTestRuntime } from "../../nri/test-runtime.js";
import { ensureNriPeers, type NriPeers, startJsonLinesPeer } from "./nri-peers.js";

let peers: NriPeers;
beforeAll(async () => {
  peers = await ensureNriPeers();
});

async function setup() {
  const socketPath = join(tempDir(), "nri.sock");
  const runtime = await startTestRuntime(socketPath, {
    failUpdates: (req) => req.update.filter((u) => u.containerId.startsWith("fail-")),
  });
  onTestFinished(() => runtime.close());
  const registered = runtime.nextPlugin();
  const go = startJsonLinesPeer(peers.goPlugin, ["--socket", socketPath, "--name", "go-stub", "--idx", "42"]);
  onTestFinished(() => go.kill());
  const p = await registered;
  return { runtime, go, p };
}

const pod = { id: "pod-1", name: "web", namespace: "default" };

describe("Go pkg/stub (NRI 0.6.1) against a TypeScript runtime", () => {
  it("registers, subscribes to the events it implements, synchronizes and answers every event", async () => {
    const { go, p } = await setup();
    expect([p.name, p.idx]).toEqual(["go-stub", "42"]);
    const configured = await p.plugin.configure({ config: "{}", runtimeName: "ts-runtime", runtimeVersion: "1" });
    expect(configured.events).toBe(
      eventMask([
        Event.RUN_POD_SANDBOX,
        Event.STOP_POD_SANDBOX,
        Event.CREATE_CONTAINER,
        Event.START_CONTAINER,
        Event.UPDATE_CONTAINER,
        Event.STOP_CONTAINER,
        Event.REMOVE_CONTAINER,
      ]),
    );
    expect(await go.next((l) => l.event === "Configure")).toMatchObject({ runtime: "ts-runtime", version: "1" });

    await p.plugin.synchronize({ pods: [pod], containers: [{ id: "c0", podSandboxId: "pod-1" }] });
    expect(await go.next((l) => l.event === "Synchronize")).toMatchObject({ pods: 1, containers: ["c0"] });

    await p.plugin.stateChange({ event: Event.RUN_POD_SANDBOX, pod });
    expect(await go.next((l) => l.event === "RunPodSandbox")).toMatchObject({ pod: "pod-1" });

    const ctr = { id: "c1", podSandboxId: "pod-1", name: "app", annotations: { a: "b" } };
    const created = await p.plugin.createContainer({ pod, container: ctr });
    expect(created.adjust?.env.map((e) => [e.key, e.value])).toEqual([["GO_PLUGIN", "1"]]);
    expect(created.adjust?.annotations["go-plugin/seen"]).toBe("2");

    await p.plugin.stateChange({ event: Event.START_CONTAINER, pod, container: ctr });
    expect(await go.next((l) => l.event === "StartContainer")).toMatchObject({ container: "c1" });

    const updated = await p.plugin.updateContainer({
      pod,
      container: ctr,
      linuxResources: { cpu: { shares: { value: 2048n } } },
    });
    expect(await go.next((l) => l.event === "UpdateContainer")).toMatchObject({ cpuShares: 2048 });
    expect(updated.update[0]?.linux?.resources?.memory?.limit?.value).toBe(256n << 20n);

    expect(await p.plugin.stopContainer({ pod, container: ctr })).toMatchObject({ update: [] });
    expect(await go.next((l) => l.event === "StopContainer")).toMatchObject({ pod: "pod-1", container: "c1" });
    await p.plugin.stateChange({ event: Event.REMOVE_CONTAINER, pod, container: ctr });
    expect(await go.next((l) => l.event === "RemoveContainer")).toMatchObject({ container: "c1" });
    await p.plugin.stateChange({ event: Event.STOP_POD_SANDBOX, pod });
    expect(await go.next((l) => l.event === "StopPodSandbox")).toMatchObject({ pod: "pod-1" });
  });

  it("a Go handler error reaches the TypeScript runtime as a TtrpcError", async () => {
    const { p } = await setup();
    await p.plugin.configure({});
    const err = await p.plugin.createContainer({ pod, container: { id: "c9", name: "fail" } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TtrpcError);
    expect((err as TtrpcError).code).toBe(Code.Unknown);
    expect((err as TtrpcError).rawMessage).toBe("go plugin refuses container c9");
  });

  it.each([
    ["5 KiB", 5 << 10],
    ["64 KiB", 64 << 10],
    ["4 MiB (less the envelope)", (4 << 20) - (8 << 10)],
  ])("carries %s messages both ways through Go's mux", async (_label, size) => {
    const { go, p } = await setup();
    await p.plugin.configure({});
    const ctr = { id: "big", name: "big", annotations: { big: "b".repeat(size), "echo-bytes": String(size) } };
    const created = await p.plugin.createContainer({ pod, container: ctr });
    const seen = await go.next((l) => l.event === "CreateContainer");
    expect(seen.annotationBytes).toBe(3 + size + "echo-bytes".length + String(size).length);
    const echo = created.adjust?.env.find((e) => e.key === "ECHO")?.value ?? "";
    expect(echo.length).toBe(size);
    expect(echo).toBe("e".repeat(size));
  });

  it("UpdateContainers from the Go plugin reaches the runtime; the runtime ending the connection ends the plugin", async () => {
    const { go, p } = await setup();
    await p.plugin.configure({});
    const reply = await go.request(
      {
        op: "updateContainers",
        event: "updateContainers",
        updates: [{ containerId: "ok-1" }, { containerId: "fail-1", linux: { resources: { cpu: { cpus: "3" } } } }],
      },
      "event",
    );
    expect(reply.failed).toEqual(["fail-1"]);
    expect(p.updates[0]?.update.map((u) => [u.containerId, u.linux?.resources?.cpu?.cpus ?? ""])).toEqual([
      ["ok-1", ""],
      ["fail-1", "3"],
    ]);
    await p.plugin.shutdown({});
    expect(await go.next((l) => l.event === "Shutdown")).toBeDefined();
    p.close();
    expect(await go.next((l) => l.event === "closed")).toBeDefined();
    expect(await go.exited).toBe(0);
  });
});
