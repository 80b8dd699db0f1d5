// hcsshim's save envelope against Go: a save.v1.Payload Go's proto.Marshal
// made (code protoc-gen-go generated from our save payload protos) around a
// StatedState Go's typeurl packed decodes in ttrpc-es and imports into a
// reference destination; what ttrpc-es and a reference shim export decodes in
// Go (test/interop/go/save/main.go).
import { beforeAll, describe, expect, it } from "vitest";
import type { Any } from "@bufbuild/protobuf/wkt";
import {
  SAVE_PAYLOAD_TYPE_URL,
  decodeSandboxConfig,
  decodeSavePayload,
  decodeStatedState,
  encodeSandboxConfig,
  importedContainers,
  migrationTypeRegistry,
  type save,
} from "ttrpc-es/migration";
import { exportSource, startShim } from "../migration/shim.js";
import { ensureGoPeer, runSavePeer, runTypeurlPeer, type GoPeers } from "./go-peer.js";

let peers: GoPeers;
beforeAll(async () => {
  peers = await ensureGoPeer();
});

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");
const wire = (any: Any) => ({ type_url: any.typeUrl, value_base64: b64(any.value) });
const unwire = (w: { type_url: string; value_base64: string }) =>
  ({ typeUrl: w.type_url, value: new Uint8Array(Buffer.from(w.value_base64, "base64")) }) as Any;

/** Go's envelope around Go typeurl's StatedState sample, and that sample as ttrpc-es reads it. */
async function goEnvelope() {
  const vm = unwire(await runTypeurlPeer(peers.typeurlPeer, "encode"));
  const envelope = unwire(await runSavePeer(peers.savePeer, "wrap", wire(vm)));
  return { envelope, stated: decodeStatedState(vm) };
}

describe("hcsshim's save envelope with Go's protobuf runtime", () => {
  it("decodes a save.v1.Payload made by Go's proto.Marshal: schema 1, the StatedState, the pod's containers", async () => {
    const { envelope, stated } = await goEnvelope();
    expect(envelope.typeUrl).toBe(SAVE_PAYLOAD_TYPE_URL);
    expect(decodeSavePayload(envelope).schemaVersion).toBe(1);
    expect(decodeSandboxConfig(envelope)).toEqual(stated);
    expect(importedContainers(decodeSavePayload(envelope))).toEqual([
      { containerId: "c1", podId: "pod-1" },
      { containerId: "c2", podId: "pod-1" },
    ]);
    // The registry opens every level by its type.microsoft.com URL.
    const opened = migrationTypeRegistry.unmarshalAny(envelope) as save.migration.Payload;
    const pod = migrationTypeRegistry.unmarshalAny(opened.pods[0]!) as save.pod.Payload;
    expect(pod.podId).toBe("pod-1");
    expect(migrationTypeRegistry.unmarshalAny(opened.vm!)).toEqual(stated);
  });

  it("a reference destination imports Go's envelope and waits for its containers", async () => {
    const { envelope, stated } = await goEnvelope();
    const dst = await startShim({}, { trackContainers: true });
    await dst.client.importSandbox({ sessionId: stated.sessionId, sandboxId: "sb", config: envelope });
    expect(dst.service.session.state).toBe("DestinationImported");
    expect(dst.service.tasks.pendingContainers()).toEqual(["c1", "c2"]);
  });

  it("Go decodes ttrpc-es's envelope, and Go's typeurl its StatedState", async () => {
    const { stated } = await goEnvelope();
    const go = await runSavePeer(peers.savePeer, "unwrap", wire(encodeSandboxConfig(stated)));
    expect(go.schema_version).toBe(1);
    expect(go.pods).toEqual([{ pod_id: stated.sandboxId, containers: stated.containers.map((c) => c.id) }]);
    const decoded = await runTypeurlPeer(peers.typeurlPeer, "decode", go.vm);
    expect(decoded.sandbox_id).toBe(stated.sandboxId);
    expect(decoded.session_id).toBe(stated.sessionId);
  });

  it("Go decodes what a reference shim's PrepareAndExportSandbox returns", async () => {
    const src = await startShim();
    const go = await runSavePeer(peers.savePeer, "unwrap", wire(await exportSource(src)));
    expect(go.schema_version).toBe(1);
    expect(go.vm.type_url).toBe("sandbox-spec/vm/v2/StatedState/StatedState");
    expect(go.pods).toEqual([{ pod_id: "sandbox-1", containers: ["c1"] }]);
  });
});
