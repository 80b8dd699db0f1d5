// The TypeScript plugin driven by a real NRI runtime: containerd/nri 0.6.1
// pkg/adaptation (Debian trixie), the code containerd 1.7 embeds. Every reply
// is checked as the Go side decoded it (protojson from Go's own structs).
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Code, TtrpcError } from "ttrpc-es";
import { createStub, type PluginHandlers, type Stub, type StubOptions } from "ttrpc-es/nri";
import { beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { useCli } from "../../cli/harness.js";
import { tempDir } from "../../common.js";
import { ensureNriPeers, type JsonLinesPeer, type NriPeers, startJsonLinesPeer } from "./nri-peers.js";

let peers: NriPeers;
beforeAll(async () => {
  peers = await ensureNriPeers();
});
const cli = useCli();

type Json = Record<string, unknown>;

async function goRuntime(socketPath: string, args: string[] = []): Promise<JsonLinesPeer> {
  const rt = startJsonLinesPeer(peers.runtime, ["--socket", socketPath, ...args]);
  onTestFinished(() => rt.kill());
  await rt.next((l) => l.op === "ready");
  return rt;
}

function plugin(handlers: PluginHandlers, socketPath: string, options: StubOptions = {}): Stub {
  const stub = createStub(handlers, { name: "ts-plugin", idx: "10", socketPath, ...options });
  onTestFinished(() => stub.stop());
  return stub;
}

const pod = { id: "pod-1", name: "web", namespace: "default", uid: "u-1" };
const container = (id: string, extra: Json = {}) => ({ id, podSandboxId: "pod-1", name: id, ...extra });

describe("Go pkg/adaptation (NRI 0.6.1) drives the TypeScript plugin", () => {
  it("registers, is configured and synchronized, and sees every lifecycle event with adjustments and updates", async () => {
    const socketPath = join(tempDir(), "nri.sock");
    const rt = await goRuntime(socketPath);
    const seen: string[] = [];
    const note = (what: string, ...ids: (string | undefined)[]) => void seen.push([what, ...ids].join(" "));
    const stub = plugin(
      {
        configure: (req) => void note("configure", req.runtimeName, req.runtimeVersion),
        synchronize: (pods, containers) => {
          note("synchronize", ...pods.map((p) => p.id), ...containers.map((c) => c.id));
          return [{ containerId: containers[0]!.id, linux: { resources: { cpu: { shares: { value: 256n } } } } }];
        },
        runPodSandbox: (p) => note("runPodSandbox", p.id),
        stopPodSandbox: (p) => note("stopPodSandbox", p.id),
        removePodSandbox: (p) => note("removePodSandbox", p.id),
        createContainer: (p, c) => {
          note("createContainer", p.id, c.id);
          return {
            adjust: {
              env: [{ key: "FROM_TS", value: `${p.namespace}/${c.name}` }],
              annotations: { "ttrpc-es/plugin": "ts" },
              linux: { resources: { memory: { limit: { value: 128n << 20n } } } },
            },
          };
        },
        postCreateContainer: (p, c) => note("postCreateContainer", p.id, c.id),
        startContainer: (p, c) => note("startContainer", p.id, c.id),
        postStartContainer: (p, c) => note("postStartContainer", p.id, c.id),
        updateContainer: (p, c, r) => {
          note("updateContainer", p.id, c.id, String(r?.cpu?.shares?.value));
          return {
            update: [{ containerId: c.id, linux: { resources: { memory: { limit: { value: 512n << 20n } } } } }],
          };
        },
        postUpdateContainer: (p, c) => note("postUpdateContainer", p.id, c.id),
        stopContainer: (p, c) => {
          note("stopContainer", p.id, c.id);
          return { update: [{ containerId: "ctr-other", ignoreFailure: true }] };
        },
        removeContainer: (p, c) => note("removeContainer", p.id, c.id),
      },
      socketPath,
    );
    await stub.start();
    await rt.request({ op: "wait", plugins: 1 });
    const synced = await rt.next((l) => l.op === "synchronized");
    expect(synced.error).toBeNull();
    expect(synced.updates).toEqual([
      { containerId: "sync-ctr-0", linux: { resources: { cpu: { shares: { value: "256" } } } } },
    ]);

    const ctr = container("ctr-1", { env: ["A=1"] });
    expect((await rt.request({ op: "RunPodSandbox", pod })).error).toBeNull();
    const created = await rt.request({ op: "CreateContainer", pod, container: ctr });
    expect(created.error).toBeNull();
    expect(created.response).toMatchObject({
      adjust: {
        annotations: { "ttrpc-es/plugin": "ts" },
        env: [{ key: "FROM_TS", value: "default/ctr-1" }],
        linux: { resources: { memory: { limit: { value: "134217728" } } } },
      },
    });
    for (const op of ["PostCreateContainer", "StartContainer", "PostStartContainer"]) {
      expect((await rt.request({ op, pod, container: ctr })).error).toBeNull();
    }
    const updated = await rt.request({
      op: "UpdateContainer",
      pod,
      container: ctr,
      linuxResources: { cpu: { shares: { value: "1024" } } },
    });
    expect(updated.error).toBeNull();
    expect(updated.response).toMatchObject({
      update: [{ containerId: "ctr-1", linux: { resources: { memory: { limit: { value: "536870912" } } } } }],
    });
    expect((await rt.request({ op: "PostUpdateContainer", pod, container: ctr })).error).toBeNull();
    const stopped = await rt.request({ op: "StopContainer", pod, container: ctr });
    expect(stopped.response).toMatchObject({ update: [{ containerId: "ctr-other", ignoreFailure: true }] });
    for (const op of ["RemoveContainer", "StopPodSandbox", "RemovePodSandbox"]) {
      expect((await rt.request({ op, pod, container: ctr })).error).toBeNull();
    }
    expect(seen).toEqual([
      "configure go-adaptation 0.6.1",
      "synchronize sync-pod-0 sync-pod-1 sync-ctr-0 sync-ctr-1",
      "runPodSandbox pod-1",
      "createContainer pod-1 ctr-1",
      "postCreateContainer pod-1 ctr-1",
      "startContainer pod-1 ctr-1",
      "postStartContainer pod-1 ctr-1",
      "updateContainer pod-1 ctr-1 1024",
      "postUpdateContainer pod-1 ctr-1",
      "stopContainer pod-1 ctr-1",
      "removeContainer pod-1 ctr-1",
      "stopPodSandbox pod-1",
      "removePodSandbox pod-1",
    ]);
  });

  it("events the plugin did not subscribe to are not sent; a handler error fails the runtime's request", async () => {
    const socketPath = join(tempDir(), "nri.sock");
    const rt = await goRuntime(socketPath);
    const seen: string[] = [];
    const stub = plugin(
      {
        createContainer: (_p, c) => {
          seen.push(c.id);
          if (c.name === "refused") throw new TtrpcError("refused by policy", Code.PermissionDenied);
          return undefined;
        },
      },
      socketPath,
    );
    await stub.start();
    await rt.request({ op: "wait", plugins: 1 });
    expect((await rt.request({ op: "StartContainer", pod, container: container("a") })).error).toBeNull();
    const refused = await rt.request({ op: "CreateContainer", pod, container: container("refused") });
    expect(refused.error).toMatch(/refused by policy/);
    expect(seen).toEqual(["refused"]);
  });

  it("UpdateContainers from the plugin reaches the runtime's update function, and failures come back", async () => {
    const socketPath = join(tempDir(), "nri.sock");
    const rt = await goRuntime(socketPath);
    const stub = plugin({ runPodSandbox: () => {} }, socketPath);
    await stub.start();
    await rt.request({ op: "wait", plugins: 1 });
    const failed = await stub.updateContainers([
      { containerId: "ok-1", linux: { resources: { cpu: { cpus: "0-1" } } } },
      { containerId: "fail-2", linux: { resources: { memory: { limit: { value: 1n << 30n } } } } },
    ]);
    expect(failed.map((u) => u.containerId)).toEqual(["fail-2"]);
    const got = await rt.next((l) => l.op === "updateContainers");
    expect(got.request).toEqual([
      { containerId: "ok-1", linux: { resources: { cpu: { cpus: "0-1" } } } },
      { containerId: "fail-2", linux: { resources: { memory: { limit: { value: "1073741824" } } } } },
    ]);
  });

  // Go's mux hands ttrpc one frame per Read and fails (ENOMEM) when it is
  // bigger than the 4096-byte bufio buffer asks for: these sizes cross that
  // both ways (Go → TS in the request, TS → Go in the adjustment).
  it.each([
    // Around one and two bufio buffers, where the envelope's few hundred bytes decide the cut.
    ["4,000 bytes", 4000],
    ["4,100 bytes", 4100],
    ["8,200 bytes", 8200],
    ["5 KiB", 5 << 10],
    ["64 KiB", 64 << 10],
    ["4 MiB (less the envelope)", (4 << 20) - (8 << 10)],
  ])("carries %s messages both ways", async (_label, size) => {
    const socketPath = join(tempDir(), "nri.sock");
    const rt = await goRuntime(socketPath);
    const stub = plugin(
      {
        createContainer: (_p, c) => ({
          adjust: { annotations: { echo: "e".repeat((c.annotations.big ?? "").length) } },
        }),
      },
      socketPath,
    );
    await stub.start();
    await rt.request({ op: "wait", plugins: 1 });
    const big = "b".repeat(size);
    const reply = await rt.request({
      op: "CreateContainer",
      pod,
      container: container("big", { annotations: { big } }),
    });
    expect(reply.error).toBeNull();
    const echo = (reply.response as { adjust: { annotations: { echo: string } } }).adjust.annotations.echo;
    expect(echo.length).toBe(size);
    expect(echo).toBe("e".repeat(size));
  });

  it("survives the runtime going away and coming back (reconnect mode)", async () => {
    const socketPath = join(tempDir(), "nri.sock");
    const rt1 = await goRuntime(socketPath);
    const seen: string[] = [];
    const reasons: string[] = [];
    const stub = plugin({ runPodSandbox: (p) => void seen.push(p.id) }, socketPath, {
      onRuntimeGone: "reconnect",
      reconnectDelayMs: 50,
      onDisconnect: (r) => void reasons.push(r),
    });
    const running = stub.run();
    await rt1.request({ op: "wait", plugins: 1 });
    await rt1.request({ op: "RunPodSandbox", pod: { id: "before" } });
    expect(await rt1.close()).toBe(0);

    const rt2 = await goRuntime(socketPath);
    await rt2.request({ op: "wait", plugins: 1 });
    await rt2.request({ op: "RunPodSandbox", pod: { id: "after" } });
    expect(seen).toEqual(["before", "after"]);
    expect(reasons).toEqual(["gone"]);
    await stub.stop();
    await running;
  });

  it("in exit mode, run() resolves when the runtime goes away", async () => {
    const socketPath = join(tempDir(), "nri.sock");
    const rt = await goRuntime(socketPath);
    const reasons: string[] = [];
    const stub = plugin({ runPodSandbox: () => {} }, socketPath, { onDisconnect: (r) => void reasons.push(r) });
    let ended = false;
    const running = stub.run().then(() => (ended = true));
    await rt.request({ op: "wait", plugins: 1 });
    expect(ended, "run() ended while the runtime was still there").toBe(false);
    expect(await rt.close()).toBe(0);
    await running;
    // It ended because the runtime went away, not through stop().
    expect(reasons).toEqual(["gone"]);
  });

  it("a plugin the runtime launches (`ttrpc-es nri run logger` as NN-name) works over the inherited socket, NRI_PLUGIN_SOCKET", async () => {
    const dir = tempDir();
    const plugins = join(dir, "plugins");
    mkdirSync(plugins);
    const out = join(dir, "logger.jsonl");
    // The runtime launches NN-name with only the three NRI_PLUGIN_* variables set: absolute paths.
    const script = join(plugins, "07-launched");
    writeFileSync(script, `#!/bin/sh\nexec "${process.execPath}" "${cli()}" nri run logger >>"${out}" 2>&1\n`);
    chmodSync(script, 0o755);
    // Start() returns once the launched plugin has registered and been configured.
    const rt = await goRuntime(join(dir, "nri.sock"), ["--plugin-path", plugins]);
    await rt.request({ op: "wait", plugins: 1 });
    expect((await rt.request({ op: "RunPodSandbox", pod })).error).toBeNull();
    const lines = readFileSync(out, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Json);
    expect(lines[0]).toMatchObject({ event: "Configure", runtimeName: "go-adaptation" });
    expect(lines[1]).toMatchObject({ event: "RunPodSandbox", pod: { id: "pod-1" } });
  });
});
