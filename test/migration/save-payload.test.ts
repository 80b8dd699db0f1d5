// hcsshim's save envelope as a destination checks it: the code and the
// message for each way an export can be wrong, the bare StatedState older
// reference shims exported, and the containers of the envelope's pods.
import { create, toBinary } from "@bufbuild/protobuf";
import { AnySchema, type Any } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { Code, TtrpcError } from "ttrpc-es";
import {
  CONTAINER_PAYLOAD_TYPE_URL,
  POD_PAYLOAD_TYPE_URL,
  SAVE_PAYLOAD_TYPE_URL,
  decodeSandboxConfig,
  decodeSavePayload,
  encodeSandboxConfig,
  encodeSavePayload,
  encodeStatedState,
  importedContainers,
  type StatedState,
} from "ttrpc-es/migration";
import { PayloadSchema as ContainerPayloadSchema } from "../../gen/github.com/Microsoft/hcsshim/internal/controller/linuxcontainer/save/payload_pb.js";
import { PayloadSchema as SavePayloadSchema } from "../../gen/github.com/Microsoft/hcsshim/internal/controller/migration/save/payload_pb.js";
import { PayloadSchema as PodPayloadSchema } from "../../gen/github.com/Microsoft/hcsshim/internal/controller/pod/save/payload_pb.js";
import { thrown } from "../common.js";

function state(containers: string[] = ["c1"]): StatedState {
  return {
    schemaVersion: 1,
    sandboxId: "sb",
    sessionId: "s1",
    vm: { guestOs: "linux", processorCount: 1, memory: { sizeBytes: 1024 * 1024, pageSize: 4096 } },
    containers: containers.map((id) => ({ id, state: "running" })),
    annotations: {},
  };
}

const any = (typeUrl: string, value: Uint8Array): Any => create(AnySchema, { typeUrl, value });

const container = (containerId: string) =>
  any(
    CONTAINER_PAYLOAD_TYPE_URL,
    toBinary(ContainerPayloadSchema, create(ContainerPayloadSchema, { schemaVersion: 1, containerId })),
  );

const pod = (podId: string, containers: Any[]) =>
  any(
    POD_PAYLOAD_TYPE_URL,
    toBinary(PodPayloadSchema, create(PodPayloadSchema, { schemaVersion: 1, podId, containers })),
  );

const envelope = (pods: Any[]) => decodeSavePayload(encodeSavePayload(encodeStatedState(state()), pods));

/** Protobuf bytes that do not parse: field 1's varint tag, then nothing. */
const JUNK = new Uint8Array([0x08]);

describe("decodeSavePayload", () => {
  it("requires a config", () => {
    const e = thrown(() => decodeSavePayload(undefined), TtrpcError);
    expect([e.code, e.rawMessage]).toEqual([Code.InvalidArgument, "sandbox saved state is required"]);
  });

  it("refuses another type URL, naming it and the one it wants", () => {
    const e = thrown(() => decodeSavePayload(any("example.com/Other", new Uint8Array())), TtrpcError);
    expect(e.code).toBe(Code.InvalidArgument);
    expect(e.rawMessage).toBe(
      `unsupported sandbox saved-state type "example.com/Other", want ${SAVE_PAYLOAD_TYPE_URL}`,
    );
  });

  it("answers bytes that do not parse with UNKNOWN, keeping the parser's error", () => {
    // Field 1's tag without its value.
    const e = thrown(() => decodeSavePayload(any(SAVE_PAYLOAD_TYPE_URL, JUNK)), TtrpcError);
    expect(e.code).toBe(Code.Unknown);
    expect(e.cause).toBeInstanceOf(Error);
    expect(e.rawMessage).toBe(`unmarshal sandbox saved state: ${(e.cause as Error).message}`);
  });

  it("refuses another schema_version, and takes version 1", () => {
    const v2 = any(SAVE_PAYLOAD_TYPE_URL, toBinary(SavePayloadSchema, create(SavePayloadSchema, { schemaVersion: 2 })));
    const e = thrown(() => decodeSavePayload(v2), TtrpcError);
    expect(e.code).toBe(Code.InvalidArgument);
    expect(e.rawMessage).toBe("sandbox saved-state schema version 2 not supported (want 1)");
    const v0 = any(SAVE_PAYLOAD_TYPE_URL, new Uint8Array());
    expect(thrown(() => decodeSavePayload(v0), TtrpcError).rawMessage).toBe(
      "sandbox saved-state schema version 0 not supported (want 1)",
    );
    expect(decodeSavePayload(encodeSavePayload(encodeStatedState(state()))).schemaVersion).toBe(1);
  });
});

describe("decodeSandboxConfig", () => {
  it("opens the envelope and a bare StatedState alike", () => {
    expect(decodeSandboxConfig(encodeSandboxConfig(state()))).toEqual(state());
    expect(decodeSandboxConfig(encodeStatedState(state(["a", "b"])))).toEqual(state(["a", "b"]));
  });

  it("checks anything else as an envelope", () => {
    expect(thrown(() => decodeSandboxConfig(undefined), TtrpcError).rawMessage).toBe("sandbox saved state is required");
    expect(thrown(() => decodeSandboxConfig(any("x/y", new Uint8Array())), TtrpcError).code).toBe(Code.InvalidArgument);
  });
});

describe("importedContainers", () => {
  it("lists every pod's containers with their pod, in order", () => {
    const payload = envelope([pod("p1", [container("a"), container("b")]), pod("p2", [container("c")])]);
    expect(importedContainers(payload)).toEqual([
      { containerId: "a", podId: "p1" },
      { containerId: "b", podId: "p1" },
      { containerId: "c", podId: "p2" },
    ]);
    expect(importedContainers(decodeSavePayload(encodeSandboxConfig(state(["x", "y"]))))).toEqual([
      { containerId: "x", podId: "sb" },
      { containerId: "y", podId: "sb" },
    ]);
  });

  it("refuses a container id that two pods both hold", () => {
    const payload = envelope([pod("p1", [container("a")]), pod("p2", [container("b"), container("a")])]);
    const e = thrown(() => importedContainers(payload), TtrpcError);
    expect(e.code).toBe(Code.InvalidArgument);
    expect(e.rawMessage).toBe('duplicate source container id "a" across imported pods');
  });

  it("answers a pod or container of another type with UNKNOWN naming which", () => {
    const wrongPod = envelope([container("a")]);
    const e = thrown(() => importedContainers(wrongPod), TtrpcError);
    expect(e.code).toBe(Code.Unknown);
    expect(e.rawMessage).toBe(`import pod: unsupported type ${JSON.stringify(CONTAINER_PAYLOAD_TYPE_URL)}`);
    const wrongContainer = envelope([pod("p1", [pod("inner", [])])]);
    const f = thrown(() => importedContainers(wrongContainer), TtrpcError);
    expect(f.code).toBe(Code.Unknown);
    expect(f.rawMessage).toBe(`import container: unsupported type ${JSON.stringify(POD_PAYLOAD_TYPE_URL)}`);
  });

  it("answers a pod or container that does not parse with UNKNOWN naming which", () => {
    const e = thrown(() => importedContainers(envelope([any(POD_PAYLOAD_TYPE_URL, JUNK)])), TtrpcError);
    expect(e.code).toBe(Code.Unknown);
    expect(e.cause).toBeInstanceOf(Error);
    expect(e.rawMessage).toBe(`import pod: ${(e.cause as Error).message}`);
    const f = thrown(
      () => importedContainers(envelope([pod("p1", [any(CONTAINER_PAYLOAD_TYPE_URL, JUNK)])])),
      TtrpcError,
    );
    expect(f.code).toBe(Code.Unknown);
    expect(f.rawMessage).toBe(`import container: ${(f.cause as Error).message}`);
  });
});
