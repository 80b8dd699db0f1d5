// `ttrpc-es nri run logger|adjuster` as users run it, against the TypeScript
// test runtime (the Go runtime drives the same stub in test/interop/nri).
import { join } from "node:path";
import { Code } from "ttrpc-es";
import { Event, eventMask, eventsOf, NRI_0_6_EVENTS } from "ttrpc-es/nri";
import { describe, expect, it, onTestFinished } from "vitest";
import { runCli, startCli, useCli } from "../cli/harness.js";
import { tempDir } from "../common.js";
import { startTestRuntime } from "./test-runtime.js";

const cli = useCli();
const pod = { id: "pod-1", name: "web", namespace: "default", annotations: { "ttrpc-es.nri/memory-limit": "64Mi" } };

async function runExample(example: string, extra: string[] = []) {
  const socketPath = join(tempDir(), "nri.sock");
  const runtime = await startTestRuntime(socketPath);
  onTestFinished(() => runtime.close());
  const registered = runtime.nextPlugin();
  const proc = startCli(cli(), ["nri", "run", example, "--socket", socketPath, ...extra]);
  onTestFinished(() => void proc.child.kill());
  return { p: await registered, proc };
}

describe("ttrpc-es nri run", () => {
  it("logger: registers, subscribes to every NRI 0.6 event, prints each request as a JSON line, exits 0 when the runtime goes", async () => {
    const { p, proc } = await runExample("logger", ["--name", "log", "--idx", "07"]);
    expect([p.name, p.idx]).toEqual(["log", "07"]);
    const configured = await p.plugin.configure({ runtimeName: "ts", runtimeVersion: "1", config: "x" });
    expect(configured.events).toBe(NRI_0_6_EVENTS);
    expect(eventsOf(NRI_0_6_EVENTS)).toHaveLength(11);
    expect(JSON.parse(await proc.nextLine())).toEqual({
      event: "Configure",
      config: "x",
      runtimeName: "ts",
      runtimeVersion: "1",
    });
    await p.plugin.createContainer({ pod, container: { id: "c1", name: "app", env: ["A=1"] } });
    expect(JSON.parse(await proc.nextLine())).toMatchObject({
      event: "CreateContainer",
      pod: { id: "pod-1", name: "web" },
      container: { id: "c1", name: "app", env: ["A=1"] },
    });
    await p.plugin.stateChange({ event: Event.REMOVE_CONTAINER, pod, container: { id: "c1" } });
    expect(JSON.parse(await proc.nextLine())).toMatchObject({ event: "RemoveContainer", container: { id: "c1" } });
    await p.plugin.shutdown({});
    expect(JSON.parse(await proc.nextLine())).toEqual({ event: "Shutdown" });
    p.close();
    const done = await proc.done;
    expect(done.status).toBe(0);
    expect(done.stderr).toMatch(/runtime shut the plugin down/);
  });

  it("a runtime that knows newer NRI (sends NRI_version) gets the newer events too", async () => {
    const { p } = await runExample("logger");
    const configured = await p.plugin.configure({ NRIVersion: "v0.10.0" });
    expect(eventsOf(configured.events)).toContain(Event.VALIDATE_CONTAINER_ADJUSTMENT);
    p.close();
  });

  it("adjuster: adds its env variable and the annotated memory limit; a bad annotation is INVALID_ARGUMENT", async () => {
    const { p, proc } = await runExample("adjuster");
    expect([p.name, p.idx]).toEqual(["ttrpc-es-adjuster", "50"]);
    const configured = await p.plugin.configure({});
    expect(configured.events).toBe(eventMask([Event.CREATE_CONTAINER]));
    const r = await p.plugin.createContainer({ pod, container: { id: "c1", name: "app" } });
    expect(r.adjust?.env.map((e) => [e.key, e.value])).toEqual([["NRI_ADJUSTED_BY", "ttrpc-es-adjuster"]]);
    expect(r.adjust?.linux?.resources?.memory?.limit?.value).toBe(64n << 20n);
    const own = await p.plugin.createContainer({
      pod,
      container: { id: "c2", annotations: { "ttrpc-es.nri/memory-limit": "1Gi" } },
    });
    expect(own.adjust?.linux?.resources?.memory?.limit?.value).toBe(1n << 30n);
    await expect(
      p.plugin.createContainer({ pod, container: { id: "c3", annotations: { "ttrpc-es.nri/memory-limit": "lots" } } }),
    ).rejects.toMatchObject({ code: Code.InvalidArgument, rawMessage: expect.stringMatching(/"lots" is not a size/) });
    p.close();
    expect((await proc.done).status).toBe(0);
  });

  it("usage errors exit 2; a runtime that is not there exits 1 naming the socket", async () => {
    const bad = await runCli(cli(), ["nri", "run", "bogus"]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/must be one of logger, adjuster, got "bogus"/);
    const idx = await runCli(cli(), ["nri", "run", "logger", "--idx", "7"]);
    expect(idx.status).toBe(2);
    expect(idx.stderr).toMatch(/two digits/);
    const missing = join(tempDir(), "none.sock");
    const gone = await runCli(cli(), ["nri", "run", "logger", "--socket", missing]);
    expect(gone.status).toBe(1);
    expect(gone.stderr).toContain(missing);
  });
});
