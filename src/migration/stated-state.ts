/**
 * StatedState: the sandbox state a source shim exports
 * (`PrepareAndExportSandboxResponse.config`) and a destination imports
 * (`ImportSandboxRequest.config`), enough for the destination to rebuild the
 * sandbox.
 *
 * ## Wire contract (mirrored by the Go side; keep both in step)
 *
 * A `google.protobuf.Any` with type URL
 * `sandbox-spec/vm/v2/StatedState/StatedState` (Go:
 * `typeurl.Register(&StatedState{}, "sandbox-spec/vm/v2/StatedState", "StatedState")`)
 * whose value is UTF-8 JSON as Go's `encoding/json` writes it: compact, keys in
 * the order below, every key `omitempty` (false, 0, "" and empty arrays/maps
 * are left out; an absent object is a nil pointer). Required keys are never
 * empty. Readers ignore keys they do not know, so optional keys can be added
 * without a new schema version; anything else bumps `schema_version`.
 *
 * | key | JSON type | required | meaning |
 * |---|---|---|---|
 * | `schema_version` | integer | yes | major version of this layout; only `1` is understood |
 * | `sandbox_id` | string | yes | the sandbox's id on the source |
 * | `session_id` | string | yes | the migration session that exported it |
 * | `vm` | object | yes | the VM's shape, below |
 * | `vm.guest_os` | string | yes | `"linux"` or `"windows"` |
 * | `vm.processor_count` | integer | yes | virtual processors, 1 … 2^32-1 |
 * | `vm.memory` | object | yes | guest memory layout, below |
 * | `vm.memory.size_bytes` | integer | yes | guest memory size, a multiple of `page_size`, at most 2^53-1 |
 * | `vm.memory.page_size` | integer | yes | bytes per page, a power of two from 512 to 2^30 |
 * | `containers` | array of objects | no | the sandbox's containers, ids unique |
 * | `containers[].id` | string | yes | container id |
 * | `containers[].image` | string | no | image reference |
 * | `containers[].bundle` | string | no | bundle path on the source host; the destination's task replaces it |
 * | `containers[].state` | string | yes | `"created"`, `"running"`, `"paused"` or `"stopped"` |
 * | `containers[].pid` | integer | no | init process id in the guest, 1 … 2^32-1 |
 * | `init_options` | object | no | the source's migration options in HCS form, below |
 * | `annotations` | object of string → string | no | free-form data, e.g. a backend's own parameters |
 *
 * `annotations` keys are written sorted by UTF-8 bytes, as Go sorts map keys.
 * `init_options` has Go field names as keys (`InitOptions` below): `Origin`
 * `"Source"`/`"Destination"`, `MemoryTransport` `"TCP"`,
 * `MemoryTransferThrottleParams` (uint32 keys, `ThrottlingScale` a number,
 * `SkipThrottling` a boolean, `MinimumThrottlePercentage` 0 … 100),
 * `CompressionSettings.ThrottleWorkerCount`, four booleans written only when true.
 *
 * Go struct (tags are the contract):
 * ```go
 * type StatedState struct {
 *     SchemaVersion uint32               `json:"schema_version,omitempty"`
 *     SandboxID     string               `json:"sandbox_id,omitempty"`
 *     SessionID     string               `json:"session_id,omitempty"`
 *     VM            *StatedVM            `json:"vm,omitempty"`
 *     Containers    []StatedContainer    `json:"containers,omitempty"`
 *     InitOptions   *InitOptions         `json:"init_options,omitempty"`
 *     Annotations   map[string]string    `json:"annotations,omitempty"`
 * }
 * // hcsschema.MigrationInitializeOptions is internal to hcsshim: mirror it.
 * type InitOptions struct {
 *     Origin                           string          `json:"Origin,omitempty"`
 *     MemoryTransport                  string          `json:"MemoryTransport,omitempty"`
 *     MemoryTransferThrottleParams     *ThrottleParams `json:"MemoryTransferThrottleParams,omitempty"`
 *     CompressionSettings              *Compression    `json:"CompressionSettings,omitempty"`
 *     ChecksumVerification             bool            `json:"ChecksumVerification,omitempty"`
 *     PerfTracingEnabled               bool            `json:"PerfTracingEnabled,omitempty"`
 *     CancelIfBlackoutThresholdExceeds bool            `json:"CancelIfBlackoutThresholdExceeds,omitempty"`
 *     PrepareMemoryTransferMode        bool            `json:"PrepareMemoryTransferMode,omitempty"`
 * }
 * // Pointers: a set 0/false is written. Every tag is `json:"<field name>,omitempty"`.
 * type ThrottleParams struct {
 *     SkipThrottling                              *bool
 *     ThrottlingScale                             *float64
 *     MinimumThrottlePercentage                   *uint8 // 0 … 100
 *     TargetNumberOfBrownoutTransferPasses        *uint32
 *     StartingBrownoutPassNumberForThrottling     *uint32
 *     MaximumNumberOfBrownoutTransferPasses       *uint32
 *     TargetBlackoutTransferTime                  *uint32
 *     BlackoutTimeThresholdForCancellingMigration *uint32
 * }
 * type Compression struct {
 *     ThrottleWorkerCount *uint32 `json:"ThrottleWorkerCount,omitempty"`
 * }
 * type StatedVM struct {
 *     GuestOS        string        `json:"guest_os,omitempty"`
 *     ProcessorCount uint32        `json:"processor_count,omitempty"`
 *     Memory         *StatedMemory `json:"memory,omitempty"`
 * }
 * type StatedMemory struct {
 *     SizeBytes uint64 `json:"size_bytes,omitempty"`
 *     PageSize  uint32 `json:"page_size,omitempty"`
 * }
 * type StatedContainer struct {
 *     ID     string `json:"id,omitempty"`
 *     Image  string `json:"image,omitempty"`
 *     Bundle string `json:"bundle,omitempty"`
 *     State  string `json:"state,omitempty"`
 *     Pid    uint32 `json:"pid,omitempty"`
 * }
 * ```
 *
 * Example (one line on the wire, wrapped here):
 * ```json
 * {"schema_version":1,"sandbox_id":"sb1","session_id":"s1",
 *  "vm":{"guest_os":"linux","processor_count":2,"memory":{"size_bytes":67108864,"page_size":4096}},
 *  "containers":[{"id":"c1","state":"running","pid":42}],
 *  "init_options":{"Origin":"Source","MemoryTransport":"TCP"}}
 * ```
 *
 * @module
 */
import type { Any } from "@bufbuild/protobuf/wkt";
import { Code } from "../code.js";
import { TtrpcError } from "../ttrpc-error.js";
import { type HcsMigrationOptions, readHcsMigrationOptions } from "./hcs-migration-options.js";
import { fail, integer, nonEmptyString, object, oneOf, required, string, UINT32_MAX } from "./json-fields.js";
import { createTypeRegistry, defineJsonType, TypeUrlError, type JsonType } from "../typeurl/index.js";
import { omitEmpty } from "../typeurl/go-json.js";

// StatedState carries HCS's migration options (its `init_options`): their
// types and the conversion that makes them are part of its contract.
export { hcsMigrationOptions } from "./hcs-migration-options.js";
export type {
  HcsMemoryTransferThrottleParams,
  HcsMigrationOptions,
  HcsMigrationOrigin,
} from "./hcs-migration-options.js";

/** The only `schema_version` this build reads and writes. */
export const STATED_STATE_SCHEMA_VERSION = 1;

/** The container states a StatedState can carry. */
export type StatedContainerState = "created" | "running" | "paused" | "stopped";

/** The guest operating systems a StatedState can carry. */
export type StatedGuestOs = "linux" | "windows";

/** Guest memory layout: what a backend needs to size and page the memory image. */
export interface StatedMemory {
  sizeBytes: number;
  pageSize: number;
}

/** The VM's shape. */
export interface StatedVm {
  guestOs: StatedGuestOs;
  processorCount: number;
  memory: StatedMemory;
}

/** One container of the sandbox. */
export interface StatedContainer {
  id: string;
  image?: string;
  /** The bundle path on the source host; the destination's task creation supplies its own. */
  bundle?: string;
  state: StatedContainerState;
  /** The init process id in the guest. */
  pid?: number;
}

/**
 * The exported sandbox state (JSON keys in snake_case; see the module
 * comment for the wire contract). `containers` and `annotations` are always
 * present after decoding, empty when the JSON left them out.
 */
export interface StatedState {
  schemaVersion: number;
  sandboxId: string;
  sessionId: string;
  vm: StatedVm;
  containers: StatedContainer[];
  initOptions?: HcsMigrationOptions;
  annotations: Record<string, string>;
}

const guestOses: readonly StatedGuestOs[] = ["linux", "windows"];
const containerStates: readonly StatedContainerState[] = ["created", "running", "paused", "stopped"];

function readMemory(value: unknown, path: string): StatedMemory {
  const json = object(value, path);
  const pageSize = integer(required(json, "page_size", `${path}.page_size`), `${path}.page_size`, 512, 2 ** 30);
  if ((pageSize & (pageSize - 1)) !== 0) fail(`${path}.page_size`, `must be a power of two, not ${pageSize}`);
  const sizeBytes = integer(
    required(json, "size_bytes", `${path}.size_bytes`),
    `${path}.size_bytes`,
    pageSize,
    Number.MAX_SAFE_INTEGER,
  );
  if (sizeBytes % pageSize !== 0)
    fail(`${path}.size_bytes`, `must be a multiple of page_size ${pageSize}, not ${sizeBytes}`);
  return { sizeBytes, pageSize };
}

function readVm(value: unknown, path: string): StatedVm {
  const json = object(value, path);
  return {
    guestOs: oneOf(required(json, "guest_os", `${path}.guest_os`), `${path}.guest_os`, guestOses),
    processorCount: integer(
      required(json, "processor_count", `${path}.processor_count`),
      `${path}.processor_count`,
      1,
      UINT32_MAX,
    ),
    memory: readMemory(required(json, "memory", `${path}.memory`), `${path}.memory`),
  };
}

function readContainer(value: unknown, path: string): StatedContainer {
  const json = object(value, path);
  const container: StatedContainer = {
    id: nonEmptyString(required(json, "id", `${path}.id`), `${path}.id`),
    state: oneOf(required(json, "state", `${path}.state`), `${path}.state`, containerStates),
  };
  if (json.image != null) container.image = string(json.image, `${path}.image`);
  if (json.bundle != null) container.bundle = string(json.bundle, `${path}.bundle`);
  if (json.pid != null) container.pid = integer(json.pid, `${path}.pid`, 1, UINT32_MAX);
  return container;
}

function readContainers(value: unknown, path: string): StatedContainer[] {
  if (value == null) return [];
  if (!Array.isArray(value)) fail(path, "must be an array");
  const containers = value.map((c, i) => readContainer(c, `${path}[${i}]`));
  const seen = new Set<string>();
  containers.forEach((c, i) => {
    if (seen.has(c.id)) fail(`${path}[${i}].id`, `duplicate container id ${JSON.stringify(c.id)}`);
    seen.add(c.id);
  });
  return containers;
}

function readAnnotations(value: unknown, path: string): Record<string, string> {
  if (value == null) return {};
  const json = object(value, path);
  const annotations: Record<string, string> = {};
  for (const [key, v] of Object.entries(json)) annotations[key] = string(v, `${path}[${JSON.stringify(key)}]`);
  return annotations;
}

/**
 * Validates parsed JSON as a StatedState. Unknown keys are ignored (Go's
 * decoder does the same, and it lets minor additions through); a missing
 * required key, a wrong type, an out-of-range number or another
 * `schema_version` is an error naming the key's path.
 */
function readStatedState(value: unknown): StatedState {
  const json = object(value, "StatedState");
  const version = required(json, "schema_version", "schema_version");
  if (version !== STATED_STATE_SCHEMA_VERSION) {
    fail(
      "schema_version",
      `${JSON.stringify(version)} is not supported (this build reads ${STATED_STATE_SCHEMA_VERSION})`,
    );
  }
  const state: StatedState = {
    schemaVersion: STATED_STATE_SCHEMA_VERSION,
    sandboxId: nonEmptyString(required(json, "sandbox_id", "sandbox_id"), "sandbox_id"),
    sessionId: nonEmptyString(required(json, "session_id", "session_id"), "session_id"),
    vm: readVm(required(json, "vm", "vm"), "vm"),
    containers: readContainers(json.containers, "containers"),
    annotations: readAnnotations(json.annotations, "annotations"),
  };
  if (json.init_options != null) state.initOptions = readHcsMigrationOptions(json.init_options, "init_options");
  return state;
}

// Go's encoding/json writes map keys sorted by their UTF-8 bytes, which is
// not JavaScript's UTF-16 order for characters beyond U+FFFF.
function compareUtf8(a: string, b: string): number {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i]! - y[i]!;
  }
  return x.length - y.length;
}

function sortedMap(map: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of Object.keys(map).sort(compareUtf8)) out[key] = map[key]!;
  return out;
}

function writeStatedState(state: StatedState): unknown {
  return omitEmpty({
    schema_version: state.schemaVersion,
    sandbox_id: state.sandboxId,
    session_id: state.sessionId,
    vm: omitEmpty({
      guest_os: state.vm.guestOs,
      processor_count: state.vm.processorCount,
      memory: omitEmpty({ size_bytes: state.vm.memory.sizeBytes, page_size: state.vm.memory.pageSize }),
    }),
    containers: state.containers.map((c) =>
      omitEmpty({ id: c.id, image: c.image, bundle: c.bundle, state: c.state, pid: c.pid }),
    ),
    // Reading puts the keys in Go's field order whatever order the caller used.
    init_options:
      state.initOptions === undefined ? undefined : readHcsMigrationOptions(state.initOptions, "init_options"),
    annotations: Object.keys(state.annotations).length === 0 ? undefined : sortedMap(state.annotations),
  });
}

/**
 * The StatedState JSON type at `sandbox-spec/vm/v2/StatedState/StatedState`,
 * to register in a `TypeRegistry` (`ttrpc-es/typeurl`) that should decode it.
 */
export const StatedStateType: JsonType<StatedState> = defineJsonType(
  ["sandbox-spec/vm/v2/StatedState", "StatedState"],
  {
    toJson: writeStatedState,
    fromJson: readStatedState,
  },
);

const registry = createTypeRegistry(StatedStateType);

/**
 * Packs a StatedState as Go's typeurl would: JSON under
 * `sandbox-spec/vm/v2/StatedState/StatedState`. The state is validated first;
 * an invalid one is a bug in the exporting shim, reported as a TtrpcError
 * with INTERNAL.
 */
export function encodeStatedState(state: StatedState): Any {
  try {
    readStatedState(writeStatedState(state));
    return registry.marshalAny(StatedStateType, state);
  } catch (e) {
    throw new TtrpcError(`cannot export the sandbox state: ${(e as Error).message}`, Code.Internal, { cause: e });
  }
}

/**
 * Unpacks and validates the StatedState in an Any. A wrong type URL, JSON
 * that does not parse, another schema major version, a missing required key
 * or a wrong type throws a TtrpcError with INVALID_ARGUMENT whose message
 * names the type URL and the offending key.
 */
export function decodeStatedState(any: Any | undefined): StatedState {
  if (any === undefined) throw new TtrpcError("config is required", Code.InvalidArgument);
  try {
    return registry.unmarshalTo(any, StatedStateType);
  } catch (e) {
    if (e instanceof TypeUrlError) {
      const message =
        e.reason === "mismatch"
          ? `config has type ${JSON.stringify(any.typeUrl)}, want ${JSON.stringify(StatedStateType.typeUrl)}`
          : e.message;
      throw new TtrpcError(message, Code.InvalidArgument, { cause: e });
    }
    throw e;
  }
}
