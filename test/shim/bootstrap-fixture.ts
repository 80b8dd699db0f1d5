// The BootstrapParams both bootstrap tests encode: the values
// test/interop/shim/bootstrap-go/main.go encodes with Go.
import { create } from "@bufbuild/protobuf";
import { BootstrapParamsSchema, LogLevel } from "../../gen/containerd/runtime/bootstrap/v1/bootstrap_pb.js";

export const FIXTURE_ADDRESS = "unix:///run/containerd/s/abc";

export const fixtureParams = () =>
  create(BootstrapParamsSchema, {
    instanceId: "task-1",
    namespace: "default",
    logLevel: LogLevel.DEBUG,
    containerdVersion: "2.3.0",
    containerdTtrpcAddress: "/run/containerd/containerd.sock.ttrpc",
    containerdGrpcAddress: "/run/containerd/containerd.sock",
    containerdBinary: "/usr/bin/containerd",
    extensions: [{ value: { typeUrl: "containerd.runc.v1.Options", value: new Uint8Array([0x10, 0x01]) } }],
    socketDir: "/run/containerd/s",
  });
