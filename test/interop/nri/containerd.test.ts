// The real containerd, Debian trixie's 1.7.24 (built with NRI 0.6.1) and Debian
// sid's 2.1.9 (built with NRI 0.8.0; containerd-2.1.9/setup.sh), each started
// by the test as root with its own root, state and socket paths and NRI
// enabled. The example plugin runs as users run it (`ttrpc-es nri run
// logger`): containerd registers, configures and synchronizes it, and when
// containerd stops the plugin sees the connection end and exits 0. Neither NRI
// sends a Shutdown call on stop: the closed connection is its shutdown. NRI 0.8
// adds the Configure timeouts (registration and request), checked here; its
// event set is still 0.6's eleven (sid's nri 0.8.0 api.proto ends at
// REMOVE_CONTAINER), and the stub subscribes to those.
// Then real container events: a pod and a container made through containerd's
// CRI reach our plugin, and its adjustment lands in the container's spec.
import { mkdirSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { createStub } from "ttrpc-es/nri";
import { beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { startCli, useCli } from "../../cli/harness.js";
import { createCriClient } from "./cri-client.js";
import { runSetupScript } from "../go-peer.js";
import { startContainerd } from "../containerd-daemon.js";
import { ensureNriPeers, type NriPeers } from "./nri-peers.js";
import { buildBusyboxImage } from "./oci-image.js";

const sid = `${dirname(new URL(import.meta.url).pathname)}/containerd-2.1.9/`;
let peers: NriPeers;
beforeAll(async () => {
  peers = await ensureNriPeers();
  await runSetupScript(`${sid}setup.sh`);
});

/** The containerd binaries of each version under test. */
const versions = [
  { version: "1.7.24", nri: "0.6.1", bin: () => ({ containerd: peers.containerd, ctr: peers.ctr }) },
  {
    version: "2.1.9",
    nri: "0.8.0",
    bin: () => ({ containerd: `${sid}.build/root/usr/bin/containerd`, ctr: `${sid}.build/root/usr/bin/ctr` }),
  },
];
const cli = useCli();

describe.each(versions)("the real containerd $version (NRI $nri)", ({ version, nri, bin }) => {
  it("configures and synchronizes `ttrpc-es nri run logger`, which exits 0 when containerd stops", async () => {
    const ctd = await startContainerd(bin().containerd);
    const proc = startCli(cli(), [
      "nri",
      "run",
      "logger",
      "--socket",
      ctd.nriSocket,
      "--name",
      "logger",
      "--idx",
      "05",
    ]);
    onTestFinished(() => void proc.child.kill());
    const configure = JSON.parse(await proc.nextLine());
    expect(configure).toMatchObject({ event: "Configure", runtimeName: "containerd" });
    expect(configure.runtimeVersion.startsWith(version)).toBe(true);
    // NRI 0.8 tells the plugin the runtime's timeouts (5s and 2s in the config above); 0.6 does not.
    const timeouts = nri === "0.6.1" ? {} : { registrationTimeout: "5000", requestTimeout: "2000" };
    expect({
      registrationTimeout: configure.registrationTimeout,
      requestTimeout: configure.requestTimeout,
    }).toEqual({ registrationTimeout: undefined, requestTimeout: undefined, ...timeouts });
    // No pods or containers exist in this fresh containerd.
    expect(JSON.parse(await proc.nextLine())).toEqual({ event: "Synchronize", pods: [], containers: [] });
    expect(await ctd.stop()).toBe(0);
    const done = await proc.done;
    expect(done.status).toBe(0);
    expect(done.stderr).toMatch(/runtime went away/);
    // containerd names the plugin by index and name in its own log
    expect(ctd.log()).toMatch(/05-logger/);
  });

  it("a pod and a container made through containerd's CRI reach the plugin, and its adjustment reaches the container", async () => {
    const image = "localhost/ttrpc-es-busybox:1";
    const { containerd, ctr } = bin();
    const ctd = await startContainerd(
      containerd,
      `[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${image}"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
`,
    );
    const archive = buildBusyboxImage(ctd.dir, image, ["/bin/busybox", "sleep", "3600"]);
    execFileSync(ctr, ["--address", ctd.grpcSocket, "-n", "k8s.io", "images", "import", archive], {
      stdio: "pipe",
    });
    const seen: string[] = [];
    const note = (what: string, name?: string) => void seen.push(name === undefined ? what : `${what} ${name}`);
    const stub = createStub(
      {
        synchronize: () => void note("synchronize"),
        runPodSandbox: (p) => note("runPodSandbox", p.name),
        stopPodSandbox: (p) => note("stopPodSandbox", p.name),
        removePodSandbox: (p) => note("removePodSandbox", p.name),
        createContainer: (_p, c) => {
          note("createContainer", c.name);
          return {
            adjust: { env: [{ key: "ADJUSTED_BY", value: "ttrpc-es" }], annotations: { "ttrpc-es/seen": "1" } },
          };
        },
        postCreateContainer: (_p, c) => note("postCreateContainer", c.name),
        startContainer: (_p, c) => note("startContainer", c.name),
        postStartContainer: (_p, c) => note("postStartContainer", c.name),
        stopContainer: (_p, c) => void note("stopContainer", c.name),
        removeContainer: (_p, c) => note("removeContainer", c.name),
      },
      { name: "cri-test", idx: "05", socketPath: ctd.nriSocket },
    );
    onTestFinished(() => stub.stop());
    await stub.start();
    const logs = join(ctd.dir, "logs");
    mkdirSync(logs);
    const cri = createCriClient(ctd.grpcSocket, logs);
    onTestFinished(() => cri.close());
    const pod = { name: "nri-pod", uid: "uid-1", namespace: "default" };
    const podId = await cri.runPodSandbox(pod);
    // Whatever happens below, the pod goes: a shim left running would outlive the test.
    onTestFinished(async () => {
      await cri.stopPodSandbox(podId).catch(() => {});
      await cri.removePodSandbox(podId).catch(() => {});
    });
    const ctrId = await cri.createContainer(podId, pod, {
      name: "app",
      image,
      command: ["/bin/busybox", "sleep", "3600"],
    });
    await cri.startContainer(ctrId);
    // The adjustment is in the container's OCI spec, as containerd stored it.
    const info = JSON.parse(
      execFileSync(ctr, ["--address", ctd.grpcSocket, "-n", "k8s.io", "containers", "info", ctrId], {
        encoding: "utf8",
      }),
    ) as { Spec: { process: { env: string[] }; annotations: Record<string, string> } };
    expect(info.Spec.process.env).toContain("ADJUSTED_BY=ttrpc-es");
    expect(info.Spec.annotations["ttrpc-es/seen"]).toBe("1");
    await cri.stopContainer(ctrId, 0);
    await cri.removeContainer(ctrId);
    await cri.stopPodSandbox(podId);
    await cri.removePodSandbox(podId);
    expect(seen).toEqual([
      "synchronize",
      "runPodSandbox nri-pod",
      "createContainer app",
      "postCreateContainer app",
      "startContainer app",
      "postStartContainer app",
      "stopContainer app",
      "removeContainer app",
      "stopPodSandbox nri-pod",
      "removePodSandbox nri-pod",
    ]);
  });
});
