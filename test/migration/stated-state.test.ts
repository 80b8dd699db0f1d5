import { create } from "@bufbuild/protobuf";
import { AnySchema, type Any } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import {
  InitializeOptionsSchema,
  MemoryTransport,
} from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_options_pb.js";
import { Code } from "../../src/code.js";
import { TtrpcError } from "../../src/ttrpc-error.js";
import {
  StatedStateType,
  decodeStatedState,
  encodeStatedState,
  hcsMigrationOptions,
  initializeOptionsFromProto,
  type StatedState,
} from "ttrpc-es/migration";
import { createTypeRegistry } from "ttrpc-es/typeurl";
import { encodeGoJson } from "../../src/typeurl/go-json.js";

const url = "sandbox-spec/vm/v2/StatedState/StatedState";

// The example of the contract comment in src/migration/stated-state.ts.
const exampleJson =
  '{"schema_version":1,"sandbox_id":"sb1","session_id":"s1","vm":{"guest_os":"linux","processor_count":2,"memory":{"size_bytes":67108864,"page_size":4096}},"containers":[{"id":"c1","state":"running","pid":42}],"init_options":{"Origin":"Source","MemoryTransport":"TCP"}}';

function example(): StatedState {
  return {
    schemaVersion: 1,
    sandboxId: "sb1",
    sessionId: "s1",
    vm: { guestOs: "linux", processorCount: 2, memory: { sizeBytes: 64 * 1024 * 1024, pageSize: 4096 } },
    containers: [{ id: "c1", state: "running", pid: 42 }],
    initOptions: { Origin: "Source", MemoryTransport: "TCP" },
    annotations: {},
  };
}

function full(): StatedState {
  return {
    schemaVersion: 1,
    sandboxId: "sandbox-7",
    sessionId: "6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9",
    vm: { guestOs: "windows", processorCount: 8, memory: { sizeBytes: 2 ** 33, pageSize: 2 ** 21 } },
    containers: [
      {
        id: "pause",
        image: "mcr.microsoft.com/oss/kubernetes/pause:3.9",
        bundle: "C:\\bundles\\pause",
        state: "running",
        pid: 1,
      },
      { id: "app", image: "example.com/app:<v2>&", state: "paused" },
      { id: "done", state: "stopped" },
    ],
    initOptions: {
      Origin: "Source",
      MemoryTransport: "TCP",
      MemoryTransferThrottleParams: {
        SkipThrottling: false,
        ThrottlingScale: 0.5,
        MinimumThrottlePercentage: 0,
        TargetBlackoutTransferTime: 250,
      },
      CompressionSettings: { ThrottleWorkerCount: 4 },
      ChecksumVerification: true,
      PrepareMemoryTransferMode: true,
    },
    annotations: { "sim.dirty_rate": "1000", "a.first": "x" },
  };
}

function jsonAny(text: string, typeUrl = url): Any {
  return create(AnySchema, { typeUrl, value: new TextEncoder().encode(text) });
}

function text(any: Any): string {
  return new TextDecoder().decode(any.value);
}

function expectInvalid(any: Any | undefined, ...fragments: string[]): void {
  let caught: unknown;
  try {
    decodeStatedState(any);
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(TtrpcError);
  expect((caught as TtrpcError).code).toBe(Code.InvalidArgument);
  for (const fragment of fragments) expect((caught as TtrpcError).message).toContain(fragment);
}

describe("encodeStatedState", () => {
  it("writes the contract's example byte for byte", () => {
    const any = encodeStatedState(example());
    expect(any.typeUrl).toBe(url);
    expect(text(any)).toBe(exampleJson);
  });

  it("omits empty keys as Go's omitempty does", () => {
    const state = example();
    state.containers = [{ id: "c1", state: "created", image: "", bundle: "" }];
    delete state.initOptions;
    expect(text(encodeStatedState(state))).toBe(
      '{"schema_version":1,"sandbox_id":"sb1","session_id":"s1","vm":{"guest_os":"linux","processor_count":2,"memory":{"size_bytes":67108864,"page_size":4096}},"containers":[{"id":"c1","state":"created"}]}',
    );
    state.containers = [];
    expect(text(encodeStatedState(state))).not.toContain("containers");
  });

  it("writes annotations sorted by UTF-8 bytes, as Go sorts map keys", () => {
    const state = example();
    state.annotations = { b: "2", "\u{1F600}": "emoji", a: "1", "\uFFFD": "replacement" };
    expect(text(encodeStatedState(state))).toContain(
      '"annotations":{"a":"1","b":"2","\uFFFD":"replacement","\u{1F600}":"emoji"}',
    );
  });

  it("writes a key before the longer keys it is a prefix of, whatever the order given", () => {
    const state = example();
    state.annotations = { ab: "2", a: "1", abc: "3" };
    expect(text(encodeStatedState(state))).toContain('"annotations":{"a":"1","ab":"2","abc":"3"}');
    state.annotations = { a: "1", abc: "3", ab: "2" };
    expect(text(encodeStatedState(state))).toContain('"annotations":{"a":"1","ab":"2","abc":"3"}');
  });

  it("writes init options in Go field order, keeping set zero pointers", () => {
    const state = example();
    state.initOptions = {
      PrepareMemoryTransferMode: true,
      MemoryTransferThrottleParams: { TargetBlackoutTransferTime: 0, SkipThrottling: false },
      MemoryTransport: "TCP",
      Origin: "Destination",
    };
    expect(text(encodeStatedState(state))).toContain(
      '"init_options":{"Origin":"Destination","MemoryTransport":"TCP","MemoryTransferThrottleParams":{"SkipThrottling":false,"TargetBlackoutTransferTime":0},"PrepareMemoryTransferMode":true}',
    );
  });

  it("refuses an invalid state as an internal error", () => {
    const state = example();
    state.vm.memory.sizeBytes = 4097;
    expect(() => encodeStatedState(state)).toThrow(TtrpcError);
    try {
      encodeStatedState(state);
    } catch (e) {
      expect((e as TtrpcError).code).toBe(Code.Internal);
      expect((e as TtrpcError).message).toContain("vm.memory.size_bytes");
    }
  });
});

describe("decodeStatedState", () => {
  it("round-trips a full state", () => {
    const state = full();
    expect(decodeStatedState(encodeStatedState(state))).toEqual(state);
  });

  it("decodes the contract's example", () => {
    expect(decodeStatedState(jsonAny(exampleJson))).toEqual(example());
  });

  it("accepts what another encoder writes: other key order, spacing, unknown keys, explicit empties", () => {
    const json = `{
      "containers": null, "future_field": {"x": [1, 2]},
      "vm": {"memory": {"page_size": 4096, "size_bytes": 8192, "numa": 1}, "processor_count": 1, "guest_os": "linux"},
      "session_id": "s", "sandbox_id": "b", "schema_version": 1, "annotations": {},
      "init_options": {"ChecksumVerification": false, "Origin": "Source"}
    }`;
    expect(decodeStatedState(jsonAny(json))).toEqual({
      schemaVersion: 1,
      sandboxId: "b",
      sessionId: "s",
      vm: { guestOs: "linux", processorCount: 1, memory: { sizeBytes: 8192, pageSize: 4096 } },
      containers: [],
      initOptions: { Origin: "Source" },
      annotations: {},
    });
  });

  it("leaves out what init_options leaves out: no Origin, compression settings without a worker count", () => {
    const json = JSON.parse(exampleJson) as { init_options: Record<string, unknown> };
    json.init_options = { MemoryTransport: "TCP", CompressionSettings: {} };
    expect(decodeStatedState(jsonAny(JSON.stringify(json))).initOptions).toEqual({
      MemoryTransport: "TCP",
      CompressionSettings: {},
    });
  });

  it("is what a registry holding StatedStateType decodes", () => {
    const registry = createTypeRegistry(StatedStateType);
    expect(StatedStateType.typeUrl).toBe(url);
    expect(registry.unmarshalAny(encodeStatedState(example()))).toEqual(example());
    expect(registry.is(encodeStatedState(example()), url)).toBe(true);
  });

  it("requires a config", () => {
    expectInvalid(undefined, "config is required");
  });

  it.each([
    ["StatedState", "type.googleapis.com/sandbox-spec/vm/v2/StatedState/StatedState"],
    ["bare name", "StatedState"],
    ["other spec", "sandbox-spec/vm/v2/Spec/Spec"],
  ])("rejects a wrong type URL (%s)", (_name, typeUrl) => {
    expectInvalid(jsonAny(exampleJson, typeUrl), typeUrl, url);
  });

  it("rejects a value that is not JSON", () => {
    expectInvalid(jsonAny('{"schema_version":1'), url, "not valid JSON");
    expectInvalid(create(AnySchema, { typeUrl: url, value: new Uint8Array([0x7b, 0xff, 0x7d]) }), url);
    expectInvalid(jsonAny("[]"), url, "must be an object");
  });

  it.each([
    [2, "schema_version: 2 is not supported (this build reads 1)"],
    [0, "schema_version: 0 is not supported"],
    ["1", 'schema_version: "1" is not supported'],
    [1.5, "schema_version: 1.5 is not supported"],
  ])("rejects schema_version %j", (version, message) => {
    const json = JSON.parse(exampleJson) as Record<string, unknown>;
    json.schema_version = version;
    expectInvalid(jsonAny(JSON.stringify(json)), url, message);
  });

  // Each case edits the example JSON and names the error's path.
  const broken: Array<[string, (j: any) => void, string]> = [
    ["no schema_version", (j) => delete j.schema_version, "schema_version: is required"],
    ["no sandbox_id", (j) => delete j.sandbox_id, "sandbox_id: is required"],
    ["empty sandbox_id", (j) => (j.sandbox_id = ""), "sandbox_id: must not be empty"],
    ["numeric session_id", (j) => (j.session_id = 7), "session_id: must be a string"],
    ["no vm", (j) => delete j.vm, "vm: is required"],
    ["vm not an object", (j) => (j.vm = [1]), "vm: must be an object"],
    ["unknown guest_os", (j) => (j.vm.guest_os = "plan9"), 'vm.guest_os: must be one of "linux", "windows"'],
    ["no processors", (j) => (j.vm.processor_count = 0), "vm.processor_count: must be from 1"],
    ["fractional processors", (j) => (j.vm.processor_count = 1.5), "vm.processor_count: must be an integer"],
    ["no memory", (j) => delete j.vm.memory, "vm.memory: is required"],
    ["no guest_os", (j) => delete j.vm.guest_os, "vm.guest_os: is required"],
    ["no processor_count", (j) => delete j.vm.processor_count, "vm.processor_count: is required"],
    ["no page_size", (j) => delete j.vm.memory.page_size, "vm.memory.page_size: is required"],
    ["no size_bytes", (j) => delete j.vm.memory.size_bytes, "vm.memory.size_bytes: is required"],
    ["container with an empty id", (j) => (j.containers[0].id = ""), "containers[0].id: must not be empty"],
    ["container without state", (j) => delete j.containers[0].state, "containers[0].state: is required"],
    ["numeric bundle", (j) => (j.containers[0].bundle = 5), "containers[0].bundle: must be a string"],
    [
      "string SkipThrottling",
      (j) => (j.init_options.MemoryTransferThrottleParams = { SkipThrottling: "yes" }),
      "init_options.MemoryTransferThrottleParams.SkipThrottling: must be a boolean",
    ],
    [
      "negative blackout target",
      (j) => (j.init_options.MemoryTransferThrottleParams = { TargetBlackoutTransferTime: -1 }),
      "init_options.MemoryTransferThrottleParams.TargetBlackoutTransferTime: must be from 0 to 4294967295",
    ],
    [
      "compression settings not an object",
      (j) => (j.init_options.CompressionSettings = 5),
      "init_options.CompressionSettings: must be an object",
    ],
    [
      "compression settings as an array",
      (j) => (j.init_options.CompressionSettings = []),
      "init_options.CompressionSettings: must be an object",
    ],
    [
      "page size not a power of two",
      (j) => (j.vm.memory.page_size = 4095),
      "vm.memory.page_size: must be a power of two",
    ],
    ["page size too small", (j) => (j.vm.memory.page_size = 256), "vm.memory.page_size: must be from 512"],
    [
      "size not whole pages",
      (j) => (j.vm.memory.size_bytes = 4096 * 3 + 1),
      "vm.memory.size_bytes: must be a multiple of page_size 4096",
    ],
    ["size beyond 2^53", (j) => (j.vm.memory.size_bytes = 2 ** 54), "vm.memory.size_bytes: must be an integer"],
    ["size as string", (j) => (j.vm.memory.size_bytes = "67108864"), "vm.memory.size_bytes: must be an integer"],
    ["containers not an array", (j) => (j.containers = {}), "containers: must be an array"],
    ["container without id", (j) => delete j.containers[0].id, "containers[0].id: is required"],
    [
      "unknown container state",
      (j) => j.containers.push({ id: "c2", state: "zombie" }),
      "containers[1].state: must be one of",
    ],
    [
      "duplicate container",
      (j) => j.containers.push({ id: "c1", state: "created" }),
      'containers[1].id: duplicate container id "c1"',
    ],
    ["negative pid", (j) => (j.containers[0].pid = -1), "containers[0].pid: must be from 1"],
    ["numeric image", (j) => (j.containers[0].image = 5), "containers[0].image: must be a string"],
    ["non-string annotation", (j) => (j.annotations = { k: 1 }), 'annotations["k"]: must be a string'],
    [
      "other transport",
      (j) => (j.init_options.MemoryTransport = "RDMA"),
      'init_options.MemoryTransport: must be one of "TCP"',
    ],
    ["unknown origin", (j) => (j.init_options.Origin = "source"), "init_options.Origin: must be one of"],
    [
      "throttle percentage over 100",
      (j) => (j.init_options.MemoryTransferThrottleParams = { MinimumThrottlePercentage: 101 }),
      "init_options.MemoryTransferThrottleParams.MinimumThrottlePercentage: must be from 0 to 100",
    ],
    [
      "string scale",
      (j) => (j.init_options.MemoryTransferThrottleParams = { ThrottlingScale: "1" }),
      "init_options.MemoryTransferThrottleParams.ThrottlingScale: must be a number",
    ],
    [
      "negative worker count",
      (j) => (j.init_options.CompressionSettings = { ThrottleWorkerCount: -2 }),
      "init_options.CompressionSettings.ThrottleWorkerCount: must be from 0",
    ],
    [
      "string flag",
      (j) => (j.init_options.PerfTracingEnabled = "true"),
      "init_options.PerfTracingEnabled: must be a boolean",
    ],
  ];

  it.each(broken)("rejects %s, naming the key", (_name, edit, message) => {
    const json: unknown = JSON.parse(exampleJson);
    edit(json);
    expectInvalid(jsonAny(JSON.stringify(json)), url, message);
  });
});

describe("hcsMigrationOptions", () => {
  it("writes only the origin and the transport for default options", () => {
    const options = hcsMigrationOptions(
      create(InitializeOptionsSchema, { memoryTransport: MemoryTransport.TCP }),
      "Source",
    );
    expect(encodeGoJson(options)).toBe('{"Origin":"Source","MemoryTransport":"TCP"}');
  });

  it("converts every field with Go field names, in Go's order", () => {
    const init = create(InitializeOptionsSchema, {
      memoryTransport: MemoryTransport.TCP,
      memoryTransferThrottleParams: {
        skipThrottling: true,
        throttlingScale: 0.25,
        minimumThrottlePercentage: 10,
        targetNumberOfBrownoutTransferPasses: 3,
        startingBrownoutPassNumberForThrottling: 2,
        maximumNumberOfBrownoutTransferPasses: 8,
        targetBlackoutTransferTime: 300,
        blackoutTimeThresholdForCancellingMigration: 2000,
      },
      compressionSettings: { throttleWorkerCount: 4 },
      checksumVerification: true,
      perfTracingEnabled: true,
      cancelIfBlackoutThresholdExceeds: true,
      prepareMemoryTransferMode: true,
    });
    expect(encodeGoJson(hcsMigrationOptions(init, "Destination"))).toBe(
      '{"Origin":"Destination","MemoryTransport":"TCP","MemoryTransferThrottleParams":{"SkipThrottling":true,"ThrottlingScale":0.25,"MinimumThrottlePercentage":10,"TargetNumberOfBrownoutTransferPasses":3,"StartingBrownoutPassNumberForThrottling":2,"MaximumNumberOfBrownoutTransferPasses":8,"TargetBlackoutTransferTime":300,"BlackoutTimeThresholdForCancellingMigration":2000},"CompressionSettings":{"ThrottleWorkerCount":4},"ChecksumVerification":true,"PerfTracingEnabled":true,"CancelIfBlackoutThresholdExceeds":true,"PrepareMemoryTransferMode":true}',
    );
  });

  it("keeps set optional zeros (Go pointers) and drops unset ones and false booleans", () => {
    const init = create(InitializeOptionsSchema, {
      memoryTransport: MemoryTransport.TCP,
      memoryTransferThrottleParams: { skipThrottling: false, minimumThrottlePercentage: 0 },
      compressionSettings: {},
      checksumVerification: false,
    });
    expect(encodeGoJson(hcsMigrationOptions(init, "Source"))).toBe(
      '{"Origin":"Source","MemoryTransport":"TCP","MemoryTransferThrottleParams":{"SkipThrottling":false,"MinimumThrottlePercentage":0},"CompressionSettings":{}}',
    );
  });

  it("is what a StatedState carries", () => {
    const state = example();
    const init = create(InitializeOptionsSchema, { memoryTransport: MemoryTransport.TCP, perfTracingEnabled: true });
    state.initOptions = hcsMigrationOptions(init, "Source");
    expect(decodeStatedState(encodeStatedState(state)).initOptions).toEqual({
      Origin: "Source",
      MemoryTransport: "TCP",
      PerfTracingEnabled: true,
    });
  });

  it.each([
    ["UNSPECIFIED", MemoryTransport.UNSPECIFIED, "unsupported memory transport UNSPECIFIED"],
    ["an unknown number", 7 as MemoryTransport, "unsupported memory transport 7"],
  ])("rejects the memory transport %s with INVALID_ARGUMENT", (_name, memoryTransport, fragment) => {
    const init = create(InitializeOptionsSchema, { memoryTransport });
    expect(() => hcsMigrationOptions(init, "Source")).toThrow(fragment);
    try {
      hcsMigrationOptions(init, "Source");
    } catch (e) {
      expect(e).toBeInstanceOf(TtrpcError);
      expect((e as TtrpcError).code).toBe(Code.InvalidArgument);
      expect((e as TtrpcError).message).toContain("only MEMORY_TRANSPORT_TCP is accepted");
    }
  });

  it("takes a throttle percentage of exactly 100, and refuses a scale that is not finite", () => {
    const at100 = create(InitializeOptionsSchema, {
      memoryTransport: MemoryTransport.TCP,
      memoryTransferThrottleParams: { minimumThrottlePercentage: 100 },
    });
    expect(hcsMigrationOptions(at100, "Source").MemoryTransferThrottleParams).toEqual({
      MinimumThrottlePercentage: 100,
    });
    for (const throttlingScale of [Number.POSITIVE_INFINITY, Number.NaN]) {
      const init = create(InitializeOptionsSchema, {
        memoryTransport: MemoryTransport.TCP,
        memoryTransferThrottleParams: { throttlingScale },
      });
      let caught: unknown;
      try {
        hcsMigrationOptions(init, "Source");
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(TtrpcError);
      expect((caught as TtrpcError).code).toBe(Code.InvalidArgument);
      expect((caught as TtrpcError).rawMessage).toBe(`throttling_scale ${throttlingScale} is not a finite number`);
    }
  });

  it("rejects absent options and a throttle percentage over 100", () => {
    expect(() => hcsMigrationOptions(undefined, "Source")).toThrow(/init_options is required/);
    const init = create(InitializeOptionsSchema, {
      memoryTransport: MemoryTransport.TCP,
      memoryTransferThrottleParams: { minimumThrottlePercentage: 256 },
    });
    expect(() => hcsMigrationOptions(init, "Source")).toThrow(/minimum_throttle_percentage 256 is over 100/);
  });
});

describe("initializeOptionsFromProto", () => {
  it.each([
    ["UNSPECIFIED", MemoryTransport.UNSPECIFIED, '"UNSPECIFIED"'],
    ["an unknown number", 7 as MemoryTransport, '"7"'],
  ])("answers the memory transport %s with UNKNOWN, naming it as hcsshim does", (_name, memoryTransport, quoted) => {
    let caught: unknown;
    try {
      initializeOptionsFromProto(create(InitializeOptionsSchema, { memoryTransport }), "Destination");
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(TtrpcError);
    expect((caught as TtrpcError).code).toBe(Code.Unknown);
    expect((caught as TtrpcError).rawMessage).toBe(`convert memory transport: unsupported memory transport ${quoted}`);
  });
});
