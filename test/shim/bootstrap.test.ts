// Both start formats, byte for byte. The golden bytes are what Go's
// proto.Marshal (google.golang.org/protobuf, as containerd uses it) writes
// for these values: printed by `test/interop/shim/.build/bin/bootstrap-go
// encode`, which the interop suite (bootstrap-go.test.ts) runs again against
// the same values. A test that fails here, fails there too.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { AnySchema, anyPack } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import {
  BootstrapParamsSchema,
  BootstrapResultSchema,
  LogLevel,
} from "../../gen/containerd/runtime/bootstrap/v1/bootstrap_pb.js";
import { FIXTURE_ADDRESS, fixtureParams } from "./bootstrap-fixture.js";
import { encodeStartReply, readStartInput, taskApiVersion } from "ttrpc-es/shim";

const GO_PARAMS = Buffer.from(
  "0a067461736b2d31120764656661756c7418fcffffffffffffffff012205322e332e302a252f72756e2f636f6e7461696e6572642f" +
    "636f6e7461696e6572642e736f636b2e7474727063321f2f72756e2f636f6e7461696e6572642f636f6e7461696e6572642e736f" +
    "636b3a132f7573722f62696e2f636f6e7461696e65726442220a200a1a636f6e7461696e6572642e72756e632e76312e4f707469" +
    "6f6e73120210014a112f72756e2f636f6e7461696e6572642f73",
  "hex",
);
const GO_RESULT = Buffer.from("0803121c756e69783a2f2f2f72756e2f636f6e7461696e6572642f732f6162631a057474727063", "hex");
const ADDRESS = FIXTURE_ADDRESS;

describe("start's stdin", () => {
  it("reads containerd 2.3's BootstrapParams from Go's bytes", () => {
    const input = readStartInput(GO_PARAMS, "task-1", "default");
    expect(input.format).toBe("bootstrap");
    if (input.format !== "bootstrap") return;
    const p = input.params;
    expect(p.logLevel).toBe(LogLevel.DEBUG);
    expect(p.containerdTtrpcAddress).toBe("/run/containerd/containerd.sock.ttrpc");
    expect(p.containerdGrpcAddress).toBe("/run/containerd/containerd.sock");
    expect(p.socketDir).toBe("/run/containerd/s");
    expect(p.extensions[0]?.value?.typeUrl).toBe("containerd.runc.v1.Options");
    expect(Buffer.from(p.extensions[0]!.value!.value)).toEqual(Buffer.from([0x10, 0x01]));
  });

  it("encodes BootstrapParams exactly as Go does", () => {
    const params = fixtureParams();
    expect(Buffer.from(toBinary(BootstrapParamsSchema, params))).toEqual(GO_PARAMS);
  });

  it("takes params whose id or namespace differ from the flags as the old format, as Go does", () => {
    expect(readStartInput(GO_PARAMS, "task-2", "default").format).toBe("legacy");
    expect(readStartInput(GO_PARAMS, "task-1", "k8s.io").format).toBe("legacy");
  });

  it("reads containerd 2.2's runtime options Any, and no stdin at all, as the old format", () => {
    const any = anyPack(BootstrapResultSchema, create(BootstrapResultSchema, { address: "x" }));
    const input = readStartInput(toBinary(AnySchema, any), "task-1", "default");
    expect(input).toMatchObject({ format: "legacy", options: { typeUrl: any.typeUrl } });
    expect(readStartInput(new Uint8Array(), "task-1", "default")).toEqual({ format: "legacy", options: undefined });
  });
});

describe("start's stdout", () => {
  const bootstrap = readStartInput(GO_PARAMS, "task-1", "default");
  const legacy = readStartInput(new Uint8Array(), "task-1", "default");

  it("answers containerd 2.3 with a binary BootstrapResult, exactly as Go encodes it", () => {
    const version = taskApiVersion(bootstrap, "2");
    expect(version).toBe(3);
    const out = encodeStartReply(bootstrap, { address: ADDRESS, version }, "2");
    expect(Buffer.from(out)).toEqual(GO_RESULT);
    expect(fromBinary(BootstrapResultSchema, out)).toMatchObject({ version: 3, address: ADDRESS, protocol: "ttrpc" });
  });

  it("answers containerd 1.7 and 2.x (MAX_SHIM_VERSION=2) with JSON version 2", () => {
    const version = taskApiVersion(legacy, "2");
    const out = Buffer.from(encodeStartReply(legacy, { address: ADDRESS, version }, "2")).toString();
    expect(JSON.parse(out)).toEqual({ version: 2, address: ADDRESS, protocol: "ttrpc" });
  });

  it("answers containerd 1.6 (no MAX_SHIM_VERSION) with the bare address", () => {
    const out = encodeStartReply(legacy, { address: ADDRESS, version: taskApiVersion(legacy, undefined) }, undefined);
    expect(Buffer.from(out).toString()).toBe(ADDRESS);
  });
});
