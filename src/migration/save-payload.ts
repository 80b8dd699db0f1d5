/**
 * hcsshim's save envelope: what a real LCOW shim's PrepareAndExportSandbox
 * returns in `config` and its ImportSandbox accepts, a
 * `hcsshim.controller.migration.save.v1.Payload` under
 * `type.microsoft.com/hcsshim.controller.migration.save.v1.Payload` with
 * `schema_version` 1, a VM payload and one payload per pod.
 *
 * The reference shims exchange the same envelope: its VM payload is the
 * project's StatedState (JSON, `sandbox-spec/vm/v2/StatedState/StatedState`)
 * and its pods are `hcsshim.controller.pod.save.v1.Payload`s naming the
 * sandbox's containers, so an orchestrator written against them passes the
 * envelope check a real hcsshim destination makes.
 *
 * @module
 */
import { create, fromBinary, toBinary, type DescFile } from "@bufbuild/protobuf";
import { AnySchema, type Any } from "@bufbuild/protobuf/wkt";
import { file_github_com_Microsoft_hcsshim_internal_controller_device_scsi_save_payload as scsiFile } from "../../gen/github.com/Microsoft/hcsshim/internal/controller/device/scsi/save/payload_pb.js";
import {
  file_github_com_Microsoft_hcsshim_internal_controller_linuxcontainer_save_payload as containerFile,
  PayloadSchema as ContainerPayloadSchema,
} from "../../gen/github.com/Microsoft/hcsshim/internal/controller/linuxcontainer/save/payload_pb.js";
import {
  file_github_com_Microsoft_hcsshim_internal_controller_migration_save_payload as saveFile,
  PayloadSchema as SavePayloadSchema,
  type Payload as SavePayload,
} from "../../gen/github.com/Microsoft/hcsshim/internal/controller/migration/save/payload_pb.js";
import { file_github_com_Microsoft_hcsshim_internal_controller_network_save_payload as networkFile } from "../../gen/github.com/Microsoft/hcsshim/internal/controller/network/save/payload_pb.js";
import {
  file_github_com_Microsoft_hcsshim_internal_controller_pod_save_payload as podFile,
  PayloadSchema as PodPayloadSchema,
} from "../../gen/github.com/Microsoft/hcsshim/internal/controller/pod/save/payload_pb.js";
import { file_github_com_Microsoft_hcsshim_internal_controller_process_save_payload as processFile } from "../../gen/github.com/Microsoft/hcsshim/internal/controller/process/save/payload_pb.js";
import { file_github_com_Microsoft_hcsshim_internal_controller_vm_save_payload as vmFile } from "../../gen/github.com/Microsoft/hcsshim/internal/controller/vm/save/payload_pb.js";
import { createTypeRegistry, type TypeRegistry } from "../typeurl/index.js";
import { invalid, plain } from "./migration-errors.js";
import { decodeStatedState, encodeStatedState, StatedStateType, type StatedState } from "./stated-state.js";

/** The envelope's `schema_version`; a destination rejects any other. */
export const SAVE_SCHEMA_VERSION = 1;

/** The prefix hcsshim puts before a save payload's full name. */
const MICROSOFT_TYPE_PREFIX = "type.microsoft.com/";

/** The envelope's type URL, as hcsshim's `save.TypeURL`. */
export const SAVE_PAYLOAD_TYPE_URL = `${MICROSOFT_TYPE_PREFIX}${SavePayloadSchema.typeName}`;

/** The pod payload's type URL. */
export const POD_PAYLOAD_TYPE_URL = `${MICROSOFT_TYPE_PREFIX}${PodPayloadSchema.typeName}`;

/** The Linux container payload's type URL. */
export const CONTAINER_PAYLOAD_TYPE_URL = `${MICROSOFT_TYPE_PREFIX}${ContainerPayloadSchema.typeName}`;

/** Every save payload file: the envelope and the inner payloads a client may inspect. */
export const saveFiles: readonly DescFile[] = [
  saveFile,
  vmFile,
  podFile,
  containerFile,
  processFile,
  networkFile,
  scsiFile,
];

/**
 * The typeurl registry of `ttrpc-es/migration`: StatedState (JSON) and every
 * save payload (protobuf; `type.microsoft.com/<full name>` resolves by the
 * name after the last `/`, as Go's typeurl does). `unmarshalAny` on it opens
 * an exported config and everything inside it.
 */
export const migrationTypeRegistry: TypeRegistry = createTypeRegistry(StatedStateType, ...saveFiles);

/** A decoded envelope. */
export type { SavePayload };

function packed(typeUrl: string, bytes: Uint8Array): Any {
  return create(AnySchema, { typeUrl, value: bytes });
}

/**
 * Decodes an envelope as a real hcsshim destination checks it: a missing
 * config or another type URL is INVALID_ARGUMENT, bytes that do not parse are
 * UNKNOWN (hcsshim's plain error), another `schema_version` INVALID_ARGUMENT.
 */
export function decodeSavePayload(any: Any | undefined): SavePayload {
  if (any === undefined) throw invalid("sandbox saved state is required");
  if (any.typeUrl !== SAVE_PAYLOAD_TYPE_URL) {
    throw invalid(`unsupported sandbox saved-state type ${JSON.stringify(any.typeUrl)}, want ${SAVE_PAYLOAD_TYPE_URL}`);
  }
  let payload: SavePayload;
  try {
    payload = fromBinary(SavePayloadSchema, any.value);
  } catch (e) {
    throw plain(`unmarshal sandbox saved state: ${(e as Error).message}`, e);
  }
  if (payload.schemaVersion !== SAVE_SCHEMA_VERSION) {
    throw invalid(
      `sandbox saved-state schema version ${payload.schemaVersion} not supported (want ${SAVE_SCHEMA_VERSION})`,
    );
  }
  return payload;
}

/** Packs an envelope (schema_version 1) around a VM payload and pod payloads. */
export function encodeSavePayload(vm: Any, pods: readonly Any[] = []): Any {
  const payload = create(SavePayloadSchema, { schemaVersion: SAVE_SCHEMA_VERSION, vm, pods: [...pods] });
  return packed(SAVE_PAYLOAD_TYPE_URL, toBinary(SavePayloadSchema, payload));
}

/**
 * The reference shims' export: the envelope with the StatedState as its VM
 * payload and one pod (the sandbox) listing its containers, so a destination
 * knows which containers Task Create must re-create.
 */
export function encodeSandboxConfig(state: StatedState): Any {
  const containers = state.containers.map((c) =>
    packed(
      CONTAINER_PAYLOAD_TYPE_URL,
      toBinary(ContainerPayloadSchema, create(ContainerPayloadSchema, { schemaVersion: 1, containerId: c.id })),
    ),
  );
  const pod = create(PodPayloadSchema, {
    schemaVersion: 1,
    podId: state.sandboxId,
    gcsPodId: state.sandboxId,
    containers,
  });
  return encodeSavePayload(encodeStatedState(state), [packed(POD_PAYLOAD_TYPE_URL, toBinary(PodPayloadSchema, pod))]);
}

/**
 * The StatedState inside a reference shim's export (a save envelope), or a
 * bare StatedState Any as older reference shims exported it. Errors as
 * {@link decodeSavePayload} and `decodeStatedState`.
 */
export function decodeSandboxConfig(any: Any | undefined): StatedState {
  if (any !== undefined && any.typeUrl === StatedStateType.typeUrl) return decodeStatedState(any);
  return decodeStatedState(decodeSavePayload(any).vm);
}

/** A container an envelope's pod holds: its id on the source and its pod's. */
export interface ImportedContainer {
  readonly containerId: string;
  readonly podId: string;
}

/**
 * The containers of an envelope's pods, as hcsshim's import lists them: a
 * pod or container payload of another type or that does not parse is
 * UNKNOWN (hcsshim's plain error), a container id in two pods INVALID_ARGUMENT.
 */
export function importedContainers(payload: SavePayload): ImportedContainer[] {
  const byId = new Map<string, ImportedContainer>();
  for (const podAny of payload.pods) {
    const pod = unpack(podAny, POD_PAYLOAD_TYPE_URL, PodPayloadSchema, "pod");
    for (const containerAny of pod.containers) {
      const { containerId } = unpack(containerAny, CONTAINER_PAYLOAD_TYPE_URL, ContainerPayloadSchema, "container");
      if (byId.has(containerId)) {
        throw invalid(`duplicate source container id ${JSON.stringify(containerId)} across imported pods`);
      }
      byId.set(containerId, { containerId, podId: pod.podId });
    }
  }
  return [...byId.values()];
}

function unpack<S extends typeof PodPayloadSchema | typeof ContainerPayloadSchema>(
  any: Any,
  typeUrl: string,
  schema: S,
  what: string,
) {
  if (any.typeUrl !== typeUrl) throw plain(`import ${what}: unsupported type ${JSON.stringify(any.typeUrl)}`);
  try {
    return fromBinary(schema, any.value);
  } catch (e) {
    throw plain(`import ${what}: ${(e as Error).message}`, e);
  }
}
