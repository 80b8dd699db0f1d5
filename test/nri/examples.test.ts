// The example plugins as a plugin author copies them: the logger's line for
// every event and the adjuster's adjustments, called directly. The CLI runs
// them against a real runtime (test/nri/nri-cli.test.ts, in a child process);
// these hold what each handler returns and prints.
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  ConfigureRequestSchema,
  ContainerSchema,
  LinuxResourcesSchema,
  PodSandboxSchema,
  ValidateContainerAdjustmentRequestSchema,
} from "../../gen/nri/pkg/api/v1alpha1/api_pb.js";
import { Code } from "../../src/code.js";
import { MEMORY_LIMIT_ANNOTATION, adjusterPlugin, parseMemoryLimit } from "../../src/nri/examples/adjuster.js";
import { loggerPlugin } from "../../src/nri/examples/logger.js";
import { TtrpcError } from "../../src/ttrpc-error.js";

const ctx = { signal: new AbortController().signal };
const pod = create(PodSandboxSchema, { id: "pod-1", name: "web", namespace: "default" });
const container = create(ContainerSchema, { id: "ctr-1", podSandboxId: "pod-1", name: "nginx" });
const resources = create(LinuxResourcesSchema, { memory: { limit: { value: 1024n } } });
const podJson = { id: "pod-1", name: "web", namespace: "default" };
const containerJson = { id: "ctr-1", podSandboxId: "pod-1", name: "nginx" };
const resourcesJson = { memory: { limit: { value: "1024" } } };

describe("the logger example", () => {
  const lines: unknown[] = [];
  const logger = loggerPlugin((line) => lines.push(JSON.parse(line)));
  const last = () => lines.at(-1);

  it("prints the runtime's Configure request, and Synchronize's pods and containers", () => {
    logger.configure!(create(ConfigureRequestSchema, { runtimeName: "containerd", runtimeVersion: "2.1.9" }), ctx);
    expect(last()).toEqual({ event: "Configure", runtimeName: "containerd", runtimeVersion: "2.1.9" });
    logger.synchronize!([pod], [container], ctx);
    expect(last()).toEqual({ event: "Synchronize", pods: [podJson], containers: [containerJson] });
    logger.shutdown!(ctx);
    expect(last()).toEqual({ event: "Shutdown" });
  });

  it.each(["runPodSandbox", "postUpdatePodSandbox", "stopPodSandbox", "removePodSandbox"] as const)(
    "prints %s with its pod",
    (handler) => {
      logger[handler]!(pod, ctx);
      expect(last()).toEqual({ event: handler[0]!.toUpperCase() + handler.slice(1), pod: podJson });
    },
  );

  it.each([
    "createContainer",
    "postCreateContainer",
    "startContainer",
    "postStartContainer",
    "postUpdateContainer",
    "stopContainer",
    "removeContainer",
  ] as const)("prints %s with its pod and container, and adjusts nothing", async (handler) => {
    expect(await logger[handler]!(pod, container, ctx)).toBeUndefined();
    expect(last()).toEqual({
      event: handler[0]!.toUpperCase() + handler.slice(1),
      pod: podJson,
      container: containerJson,
    });
  });

  it("prints the resources of UpdatePodSandbox and UpdateContainer", async () => {
    logger.updatePodSandbox!(pod, { overhead: resources }, ctx);
    expect(last()).toEqual({ event: "UpdatePodSandbox", pod: podJson, overhead: resourcesJson });
    expect(await logger.updateContainer!(pod, container, resources, ctx)).toBeUndefined();
    expect(last()).toEqual({
      event: "UpdateContainer",
      pod: podJson,
      container: containerJson,
      resources: resourcesJson,
    });
  });

  it("prints ValidateContainerAdjustment's request and lets it pass", async () => {
    const req = create(ValidateContainerAdjustmentRequestSchema, { pod, container });
    expect(await logger.validateContainerAdjustment!(req, ctx)).toBeUndefined();
    expect(last()).toEqual({ event: "ValidateContainerAdjustment", pod: podJson, container: containerJson });
  });

  it("writes one line to stdout by default", () => {
    const written: string[] = [];
    const write = process.stdout.write;
    process.stdout.write = ((chunk: string) => written.push(chunk) > 0) as typeof process.stdout.write;
    try {
      loggerPlugin().shutdown!(ctx);
    } finally {
      process.stdout.write = write;
    }
    expect(written).toEqual(['{"event":"Shutdown"}\n']);
  });
});

describe("the adjuster example", () => {
  const withAnnotation = <T extends { annotations: Record<string, string> }>(m: T, value: string): T => ({
    ...m,
    annotations: { [MEMORY_LIMIT_ANNOTATION]: value },
  });

  it("names itself in every new container's environment, and sets no limit unannotated", async () => {
    expect(await adjusterPlugin().createContainer!(pod, container, ctx)).toEqual({
      adjust: { env: [{ key: "NRI_ADJUSTED_BY", value: "ttrpc-es-adjuster" }] },
    });
    const named = await adjusterPlugin("mine").createContainer!(pod, container, ctx);
    expect(named?.adjust?.env).toEqual([{ key: "NRI_ADJUSTED_BY", value: "mine" }]);
  });

  it("sets the memory limit of the container's annotation, over its pod's", async () => {
    const limitOf = async (p: typeof pod, c: typeof container) =>
      (await adjusterPlugin().createContainer!(p, c, ctx))?.adjust?.linux?.resources?.memory?.limit?.value;
    expect(await limitOf(withAnnotation(pod, "1Gi"), container)).toBe(1n << 30n);
    expect(await limitOf(withAnnotation(pod, "1Gi"), withAnnotation(container, "256Mi"))).toBe(256n << 20n);
  });

  it("reads bytes, Ki, Mi and Gi, and refuses anything else with INVALID_ARGUMENT", async () => {
    expect([" 512 ", "2Ki", "3Mi", "4Gi"].map(parseMemoryLimit)).toEqual([512n, 2048n, 3n << 20n, 4n << 30n]);
    for (const bad of ["", "1.5Gi", "12MB", "-1", "Mi", "1 Gi"]) {
      let caught: unknown;
      try {
        parseMemoryLimit(bad);
      } catch (e) {
        caught = e;
      }
      expect(caught, bad).toBeInstanceOf(TtrpcError);
      expect((caught as TtrpcError).code).toBe(Code.InvalidArgument);
      expect((caught as TtrpcError).message).toContain(`"${bad}" is not a size`);
    }
    await expect(
      Promise.resolve().then(() => adjusterPlugin().createContainer!(withAnnotation(pod, "lots"), container, ctx)),
    ).rejects.toBeInstanceOf(TtrpcError);
  });
});
