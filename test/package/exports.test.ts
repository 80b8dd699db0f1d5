// The exact export list of every entry point in package.json, values and
// types apart, so that adding or removing an export is a deliberate change
// made here too. A new entry point needs its own table.

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { beforeAll, describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("../../", import.meta.url));

const entryPoints: Record<string, { values: string[]; types: string[] }> = {
  "ttrpc-es": {
    values: [
      "Code",
      "DEFAULT_MAX_MESSAGE_SIZE",
      "DuplicateServiceError",
      "ErrorReason",
      "Flags",
      "FrameDecoder",
      "HEADER_LENGTH",
      "MessageType",
      "Metadata",
      "OversizedMessageError",
      "TtrpcError",
      "codeFromName",
      "codeName",
      "connect",
      "createClient",
      "createServer",
      "dial",
      "encodeFrame",
      "formatAddress",
      "hasReason",
      "parseAddress",
    ],
    types: [
      "Address",
      "BiDiStreamingImpl",
      "CallFn",
      "CallOptions",
      "Client",
      "ClientOptions",
      "ClientStreamingImpl",
      "Frame",
      "FrameSink",
      "HandlerContext",
      "HybridVsockOptions",
      "Interceptor",
      "ListenOptions",
      "MetadataInit",
      "MethodImpl",
      "PeerInfo",
      "Server",
      "ServerOptions",
      "ServerStreamingImpl",
      "ServiceImpl",
      "StreamRequest",
      "StreamResponse",
      "TtrpcErrorOptions",
      "UnaryImpl",
      "UnaryRequest",
      "UnaryResponse",
    ],
  },
  "ttrpc-es/otel": {
    values: ["INSTRUMENTATION_NAME", "STATUS_CODE_ATTRIBUTE", "otelClientInterceptor", "otelServerInterceptor"],
    types: ["OtelOptions"],
  },
  "ttrpc-es/typeurl": {
    values: ["TypeUrlError", "createTypeRegistry", "defineJsonType"],
    types: ["JsonCodec", "JsonType", "TypeLike", "TypeRegistry", "TypeUrlErrorReason"],
  },
  "ttrpc-es/migration": {
    values: [
      "BlackoutExitedEventDetailsSchema",
      "CancelRequestSchema",
      "CancelResponseSchema",
      "CleanupRequestSchema",
      "CleanupResponseSchema",
      "CompressionSettingsSchema",
      "CreateDuplicateSocketRequestSchema",
      "CreateDuplicateSocketResponseSchema",
      "DEFAULT_SOCKET_WAIT_MS",
      "FinalizeAction",
      "FinalizeActionSchema",
      "FinalizeSandboxRequestSchema",
      "FinalizeSandboxResponseSchema",
      "ImportSandboxRequestSchema",
      "ImportSandboxResponseSchema",
      "InitializeOptionsSchema",
      "MemoryTransferThrottleParamsSchema",
      "MemoryTransport",
      "MemoryTransportSchema",
      "Migration",
      "MigrationServiceName",
      "NotificationSchema",
      "NotificationsRequestSchema",
      "NotificationsResponseSchema",
      "Origin",
      "OriginSchema",
      "Phase",
      "PhaseSchema",
      "PhaseState",
      "PhaseStateSchema",
      "PrepareAndExportSandboxRequestSchema",
      "PrepareAndExportSandboxResponseSchema",
      "PrepareSandboxRequestSchema",
      "PrepareSandboxResponseSchema",
      "STATED_STATE_SCHEMA_VERSION",
      "StatedStateType",
      "TransferSandboxRequestSchema",
      "TransferSandboxResponseSchema",
      "createMigrationClient",
      "createMigrationServer",
      "createMigrationService",
      "decodeStatedState",
      "encodeStatedState",
      "file_github_com_Microsoft_hcsshim_pkg_migration_migration",
      "file_github_com_Microsoft_hcsshim_pkg_migration_migration_options",
      "hcsMigrationOptions",
      "migrate",
      "normalizeSessionId",
      "registerMigrationServer",
      "sessionNumber",
    ],
    types: [
      "AttachSocketRequest",
      "BackendImportSandboxRequest",
      "BackendSession",
      "BlackoutExitedEventDetails",
      "BlackoutReport",
      "CancelRequest",
      "CancelResponse",
      "CleanupRequest",
      "CleanupResponse",
      "CompressionSettings",
      "CreateDuplicateSocketRequest",
      "CreateDuplicateSocketResponse",
      "FinalizeOutcome",
      "FinalizeRequest",
      "FinalizeResult",
      "FinalizeSandboxRequest",
      "FinalizeSandboxResponse",
      "HcsMemoryTransferThrottleParams",
      "HcsMigrationOptions",
      "HcsMigrationOrigin",
      "ImportSandboxRequest",
      "ImportSandboxResponse",
      "InitializeOptions",
      "MemoryTransferThrottleParams",
      "MigrateOptions",
      "MigrationBackend",
      "MigrationClient",
      "MigrationEvent",
      "MigrationResult",
      "MigrationServer",
      "MigrationServerOptions",
      "MigrationService",
      "MigrationServiceOptions",
      "MigrationSessionInfo",
      "MigrationSide",
      "MigrationState",
      "MigrationStep",
      "Notification",
      "NotificationsRequest",
      "NotificationsResponse",
      "PrepareAndExportSandboxRequest",
      "PrepareAndExportSandboxResponse",
      "PrepareDestinationRequest",
      "PrepareSandboxRequest",
      "PrepareSandboxResponse",
      "PrepareSourceRequest",
      "ProgressPhase",
      "SessionRequest",
      "SideOutcome",
      "StatedContainer",
      "StatedContainerState",
      "StatedGuestOs",
      "StatedMemory",
      "StatedState",
      "StatedVm",
      "TransferReporter",
      "TransferRequest",
      "TransferResult",
      "TransferSandboxRequest",
      "TransferSandboxResponse",
    ],
  },
  "ttrpc-es/migration/simulated": {
    values: [
      "DEFAULT_DIRTY_PAGES_PER_SECOND",
      "DEFAULT_MEMORY_BYTES",
      "DIRTY_RATE_ANNOTATION",
      "ENDPOINT_DESCRIPTOR_MAGIC",
      "ENDPOINT_DESCRIPTOR_VERSION",
      "GuestWorkload",
      "MemoryImage",
      "PRE_COPY_DEFAULTS",
      "SimulatedBackend",
      "SimulatedVm",
      "createEndpointPair",
      "createSimulatedBackend",
      "encodeEndpointDescriptor",
      "parseEndpointDescriptor",
      "preCopyParams",
    ],
    types: [
      "DeviceState",
      "EndpointDescriptor",
      "EndpointRole",
      "EndpointTransport",
      "GuestWorkloadState",
      "MemoryImageOptions",
      "PreCopyParams",
      "SimulatedBackendOptions",
      "SimulatedVmOptions",
      "SimulatedVmStatus",
      "SourceFaults",
      "TransferEvent",
      "TransferObserver",
      "TransferStats",
    ],
  },
  "ttrpc-es/migration/testing": {
    values: ["createTestingBackend", "testingEndpoint"],
    types: [
      "TestingBackend",
      "TestingBackendOptions",
      "TestingCall",
      "TestingEndpoint",
      "TestingOperation",
      "TestingTransfer",
    ],
  },
};

const pkg = JSON.parse(readFileSync(`${root}package.json`, "utf8")) as {
  name: string;
  exports: Record<string, string | { types: string; default: string }>;
};

/** `./migration` → `ttrpc-es/migration` and its source, `src/migration/index.ts`. */
const published = Object.entries(pkg.exports)
  .filter(([subpath]) => subpath !== "./package.json")
  .map(([subpath, target]) => {
    if (typeof target === "string") throw new Error(`${subpath}: expected { types, default }`);
    return {
      name: pkg.name + subpath.slice(1),
      source: target.default.replace(/^\.\/dist\//, "").replace(/\.js$/, ".ts"),
    };
  });

// One program for every entry point: its checker tells values from types.
let exportsOf: (source: string) => { values: string[]; types: string[] };
beforeAll(() => {
  const config = ts.getParsedCommandLineOfConfigFile(
    `${root}tsconfig.build.json`,
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, "\n"));
      },
    },
  );
  if (!config) throw new Error("tsconfig.build.json unreadable");
  const program = ts.createProgram(
    published.map((e) => root + e.source),
    { ...config.options, noEmit: true },
  );
  const checker = program.getTypeChecker();
  exportsOf = (source) => {
    const file = program.getSourceFile(root + source);
    const module = file && checker.getSymbolAtLocation(file);
    if (!module) throw new Error(`${source} is not a module`);
    const values: string[] = [];
    const types: string[] = [];
    for (const symbol of checker.getExportsOfModule(module)) {
      const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
      (target.flags & ts.SymbolFlags.Value ? values : types).push(symbol.name);
    }
    return { values: values.sort(), types: types.sort() };
  };
}, 60_000);

describe("package exports", () => {
  it("every entry point in package.json has a table here, and every table an entry point", () => {
    expect(published.map((e) => e.name).sort()).toEqual(Object.keys(entryPoints).sort());
  });

  for (const { name, source } of published) {
    describe(name, () => {
      it("exports exactly the names of its table", () => {
        expect(exportsOf(source)).toEqual(entryPoints[name]);
      });

      it("has the table's values at run time", async () => {
        const module = (await import(/* @vite-ignore */ name)) as Record<string, unknown>;
        expect(Object.keys(module).sort()).toEqual(entryPoints[name]?.values);
      });
    });
  }
});
