// containerd 2.3's bootstrap messages against Go's own protobuf encoding
// (bootstrap-go, built by setup.sh with protoc-gen-go and
// google.golang.org/protobuf, as containerd builds them): no containerd 2.3
// binary exists here, so this is the wire check of `start`'s 2.3 protocol.
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { create, toBinary } from "@bufbuild/protobuf";
import { encodeStartReply, readStartInput } from "ttrpc-es/shim";
import { beforeAll, describe, expect, it } from "vitest";
import {
  BootstrapParamsSchema,
  BootstrapResultSchema,
} from "../../../gen/containerd/runtime/bootstrap/v1/bootstrap_pb.js";
import { FIXTURE_ADDRESS, fixtureParams } from "../../shim/bootstrap-fixture.js";
import { ensureContainerd } from "./containerd-run.js";

const goBin = fileURLToPath(new URL("./.build/bin/bootstrap-go", import.meta.url));
const go = (...args: string[]) => execFileSync(goBin, args, { encoding: "utf8" }).trim();

const params = fixtureParams();
const ADDRESS = FIXTURE_ADDRESS;

let goParams: Buffer;
let goResult: Buffer;
beforeAll(async () => {
  await ensureContainerd();
  const [p, r] = go("encode").split("\n");
  goParams = Buffer.from(p!, "hex");
  goResult = Buffer.from(r!, "hex");
}, 300_000);

describe("bootstrap messages against Go's protobuf", () => {
  it("BootstrapParams: our bytes are Go's, and Go's bytes read as the 2.3 protocol", () => {
    expect(Buffer.from(toBinary(BootstrapParamsSchema, params)).toString("hex")).toBe(goParams.toString("hex"));
    const input = readStartInput(goParams, "task-1", "default");
    expect(input.format).toBe("bootstrap");
  });

  it("BootstrapResult: start's reply is Go's bytes, and Go reads it back", () => {
    const input = readStartInput(goParams, "task-1", "default");
    const reply = encodeStartReply(input, { address: ADDRESS, version: 3 }, "2");
    expect(Buffer.from(reply).toString("hex")).toBe(goResult.toString("hex"));
    expect(JSON.parse(go("decode-result", Buffer.from(reply).toString("hex")))).toEqual({
      version: 3,
      address: ADDRESS,
      protocol: "ttrpc",
    });
    expect(
      toBinary(
        BootstrapResultSchema,
        create(BootstrapResultSchema, { version: 3, address: ADDRESS, protocol: "ttrpc" }),
      ),
    ).toEqual(new Uint8Array(goResult));
  });

  it("Go reads our BootstrapParams field for field (the negative log level included)", () => {
    const decoded = JSON.parse(
      go("decode-params", Buffer.from(toBinary(BootstrapParamsSchema, params)).toString("hex")),
    );
    expect(decoded).toEqual({
      instanceId: "task-1",
      namespace: "default",
      logLevel: "LOG_LEVEL_DEBUG",
      containerdVersion: "2.3.0",
      containerdTtrpcAddress: "/run/containerd/containerd.sock.ttrpc",
      containerdGrpcAddress: "/run/containerd/containerd.sock",
      containerdBinary: "/usr/bin/containerd",
      extensions: [{ typeUrl: "containerd.runc.v1.Options", value: "1001" }],
      socketDir: "/run/containerd/s",
      hasSocketDir: true,
    });
  });
});
