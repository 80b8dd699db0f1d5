// hcsshim's own test suite of its Migration controller, case by case, run
// against the reference server over real unix sockets with the testing
// backend: every Go test function of the six files (hcsshim main 7c9ff7f48)
// is either ported here under its Go name or listed in NOT_APPLICABLE with
// the reason. Titles tagged [Dn] are the rules D1-D10 of docs/migration.md.
//
// The Go tests set the controller's fields directly; here every state is
// reached through the RPCs, which is what a client of a real shim sees.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { type Any, AnySchema } from "@bufbuild/protobuf/wkt";
import { afterAll, describe, expect, it, vi } from "vitest";
import { Code, TtrpcError } from "ttrpc-es";
import {
  FinalizeAction,
  KUBERNETES_CONTAINER_TYPE,
  LIVE_MIGRATION_SOURCE_CONTAINER_ID,
  LIVE_MIGRATION_SUPPORT_ENABLED,
  MemoryTransport,
  MigrationInvalidStateError,
  Origin,
  SAVE_PAYLOAD_TYPE_URL,
  decodeSandboxConfig,
  decodeSavePayload,
  encodeSandboxConfig,
  encodeSavePayload,
  initializeOptionsFromProto,
  save,
  sessionNumber,
  toPhaseState,
  type HcsMigrationOptions,
  type StatedState,
} from "ttrpc-es/migration";
import { createNotifier } from "../../src/migration/notifier.js";
import {
  INIT,
  Phase,
  PhaseState,
  SESSION,
  SUCCESSFUL_PHASES,
  code,
  defaultConfig,
  exportSource,
  listen,
  phases,
  prepareDestination,
  read,
  ready,
  startShim,
  testingEndpoint,
  transferred,
  type Shim,
} from "./shim.js";

/** Every Go test function of the six files, by file. */
const GO_TESTS: Record<string, readonly string[]> = {
  "internal/controller/migration/controller_source_test.go": [
    "TestPrepareSource_RejectsInvalidArgs",
    "TestPrepareSource_RejectsWrongState",
    "TestPrepareSource_RejectsAlreadyPrepared",
    "TestPrepareSource_InitializeError",
    "TestPrepareSource_Success",
    "TestExportState_RejectsSessionMismatch",
    "TestExportState_RejectsWrongState",
    "TestExportState_VMSaveError",
    "TestExportState_Success",
  ],
  "internal/controller/migration/controller_destination_test.go": [
    "TestImportState_RejectsInvalidArgs",
    "TestImportState_RejectsUndecodableState",
    "TestImportState_RejectsAlreadyImported",
    "TestImportState_RejectsConflictingState",
    "TestImportState_RejectsWrongVMState",
    "TestImportState_VMImportError",
    "TestImportState_Success",
    "TestImportState_PartialPodFailureIsAtomic",
    "TestPatchResourcePaths_RejectsInvalidArgs",
    "TestPatchResourcePaths_RejectsWrongState",
    "TestPatchResourcePaths_RejectsAlreadyPatched",
    "TestPatchResourcePaths_RejectsUnknownContainer",
    "TestPatchResourcePaths_RejectsAnnotationMismatch",
    "TestPatchResourcePaths_SCSIControllerError",
    "TestPrepareDestination_RejectsWrongState",
    "TestPrepareDestination_RejectsPendingPatches",
    "TestPrepareDestination_CreateVMError",
    "TestPrepareDestination_Success",
  ],
  "internal/controller/migration/controller_test.go": [
    "TestNew",
    "TestSessionIDToUint32",
    "TestTransfer_RejectsSessionMismatch",
    "TestTransfer_NoopWhenInProgress",
    "TestTransfer_RejectsInvalidState",
    "TestTransfer_ClaimsSocketWaiting",
    "TestTransfer_Success",
    "TestTransfer_SocketTimeout",
    "TestTransfer_CompletionDoesNotClobberCancel",
    "TestFinalize_RejectsUnspecifiedAction",
    "TestFinalize_IdempotentFinalized",
    "TestFinalize_DestinationCancelledNoop",
    "TestFinalize_DestinationCancelledResumeSucceeds",
    "TestFinalize_RejectsWrongState",
    "TestFinalize_RejectsUnsupportedAction",
    "TestFinalize_FinalizeError",
    "TestFinalize_ResumeSucceeds",
    "TestFinalize_StopSucceeds",
    "TestFinalize_ResumeError",
    "TestFinalize_StopAfterResumeTerminates",
    "TestFinalize_ResumeAfterResumeReRunsResume",
    "TestFinalize_StopAfterTerminateNoop",
    "TestFinalize_ResumeAfterTerminateErrors",
    "TestCancel_RejectsSessionMismatch",
    "TestCancel_Idempotent",
    "TestCancel_Success",
    "TestCancel_VMError",
    "TestCancel_SocketReadyAlreadyClosed",
    "TestCancel_DestinationImported",
    "TestCleanup_NoopWhenIdle",
    "TestCleanup_RejectsSessionMismatch",
    "TestCleanup_RejectsNotFinalized",
    "TestCleanup_Success",
    "TestCleanup_DestinationCancelled",
    "TestCleanup_ClosesSocketAndNotifier",
    "TestRunTransfer_Destination",
    "TestRunTransfer_UnsupportedOrigin",
    "TestRunTransfer_StartError",
    "TestRunTransfer_TransferError",
    "TestFailTransfer_BroadcastsToSubscribers",
    "TestFailTransfer_SkipsWhenCancelled",
  ],
  "internal/controller/migration/socket_test.go": [
    "TestRegisterDuplicateSocket_TooSmall",
    "TestRegisterDuplicateSocket_SessionMismatch",
    "TestRegisterDuplicateSocket_RejectsAlreadyRegistered",
    "TestRegisterDuplicateSocket_InvalidState",
    "TestProtocolInfoNativeLayout",
    "TestRegisterDuplicateSocket_EndToEnd",
  ],
  "internal/controller/migration/notifications_test.go": [
    "TestNotificationsBroadcastDeliversToSubscriber",
    "TestNotificationsBroadcastFansOutToAllSubscribers",
    "TestNotificationsBroadcastIncrementsMessageID",
    "TestNotificationsSubscribeReplaysLatest",
    "TestNotificationsSubscribeAfterCloseFails",
    "TestNotificationsBroadcastAfterCloseReturnsFalse",
    "TestNotificationsCloseClosesSubscribers",
    "TestNotificationsCloseIsIdempotent",
    "TestNotificationsSubscribeContextCancelDropsSubscriber",
    "TestNotificationsBroadcastDoesNotBlockOnSlowSubscriber",
    "TestControllerSubscribeNoActiveSession",
    "TestControllerSubscribeSessionMismatch",
    "TestControllerSubscribeReusesExistingNotifier",
    "TestControllerSubscribeCreatesNotifier",
    "TestControllerSubscribeNotifierError",
  ],
  "pkg/migration/parse_test.go": [
    "TestInitializeOptionsFromProto",
    "TestToOrigin",
    "TestToPhase",
    "TestToPhaseState",
    "TestToNotification",
  ],
};

/** Go cases (a function, or `Function/subtest`) that cannot apply here, and why. */
const NOT_APPLICABLE: Record<string, string> = {
  "TestPrepareSource_RejectsInvalidArgs/NilOptions":
    "Go-internal arguments: an RPC always has a request; its EmptySessionID case is ported",
  "TestPrepareSource_RejectsInvalidArgs/NilVMController": "Go-internal: the shim's VM controller is not on the wire",
  "TestPrepareSource_RejectsInvalidArgs/NilPodControllers": "Go-internal: the shim's pod map is not on the wire",
  TestExportState_RejectsSessionMismatch:
    "ExportState is no RPC: PrepareAndExportSandbox runs it right after PrepareSource with the same session id",
  TestExportState_RejectsWrongState:
    "ExportState is no RPC: PrepareAndExportSandbox runs it right after PrepareSource moved to SourcePrepared",
  "TestImportState_RejectsInvalidArgs/NilOptions": "Go-internal arguments: an RPC always has a request",
  "TestImportState_RejectsInvalidArgs/NilVMController": "Go-internal: the shim's VM controller is not on the wire",
  "TestImportState_RejectsInvalidArgs/NilPodControllers": "Go-internal: the shim's pod map is not on the wire",
  "TestImportState_RejectsInvalidArgs/NilContainerPodMapping":
    "Go-internal: the shim's container map is not on the wire",
  "TestPatchResourcePaths_RejectsInvalidArgs/NilRequest":
    "Go-internal: recreateContainer takes a plain object; its empty-id and annotation cases are ported",
  TestPatchResourcePaths_RejectsUnknownContainer:
    "the reference server keeps one map, pending container to its pod: a pending container always has its pod",
  TestPatchResourcePaths_SCSIControllerError:
    "no SCSI controller: the backend owns the VM's devices, and resource paths are not patched by the server",
  TestFinalize_StopAfterTerminateNoop:
    "needs a VM terminated while the session is not Finalized; here a STOP finalize ends in Finalized at once, " +
    "whose repeat rule (TestFinalize_IdempotentFinalized) makes a later STOP a no-op",
  TestFinalize_ResumeAfterTerminateErrors:
    "as TestFinalize_StopAfterTerminateNoop: a STOP ends in Finalized at once, so a later RESUME is Finalized's no-op",
  TestRunTransfer_UnsupportedOrigin: "the origin is typed: a session is Source or Destination, nothing else",
  TestProtocolInfoNativeLayout:
    "the WSAPROTOCOL_INFOW memory layout is Windows-only; the backend parses its own descriptor",
  TestNotificationsBroadcastAfterCloseReturnsFalse:
    "the Go return value is internal; after Cleanup no stream is left to observe (see TestNotificationsCloseClosesSubscribers)",
  TestControllerSubscribeNotifierError:
    "HCS's notification channel cannot fail to open: the backend reports phases through the TransferReporter",
  TestToOrigin:
    "no HCS origin strings: every notification carries the session's side (checked in TestNotificationsBroadcastDeliversToSubscriber)",
  TestToPhase: "no HCS event strings: the backend reports phases as the Phase enum",
  "TestToNotification/blackout exited with invalid details drops phase details":
    "no HCS JSON details: the backend reports the blackout as numbers",
  "TestToNotification/blackout exited without details has no phase details":
    "the server always measures a blackout the backend leaves out (BLACKOUT_STARTED to now)",
  "TestToNotification/empty origin uses fallback": "no HCS origin strings: the origin is the session's side",
};

const ported = new Set<string>();
const rules = new Set<string>();

/** A ported Go case: its Go name (function or function/subtest) leads the title. */
function go(name: string, title: string, fn: () => Promise<void> | void): void {
  ported.add(name);
  for (const m of title.matchAll(/\[(D\d+)\]/g)) rules.add(m[1]!);
  it(`${name}: ${title}`, fn);
}

const OTHER = "another-session";

function statedState(containers: string[] = [], session = SESSION): StatedState {
  return {
    schemaVersion: 1,
    sandboxId: "pod-1",
    sessionId: session,
    vm: { guestOs: "linux", processorCount: 1, memory: { sizeBytes: 1 << 20, pageSize: 4096 } },
    containers: containers.map((id) => ({ id, state: "running" as const })),
    annotations: {},
  };
}

function importSandbox(shim: Shim, config: Any | undefined = defaultConfig(), sessionId = SESSION, sandboxId = "d") {
  return shim.client.importSandbox({ sessionId, sandboxId, ...(config === undefined ? {} : { config }) });
}

/** The options the backend's call of `operation` received. */
function captureOptions(shim: Shim, operation: "prepareSource" | "prepareDestination"): HcsMigrationOptions[] {
  const seen: HcsMigrationOptions[] = [];
  const original = shim.backend[operation].bind(shim.backend) as (r: {
    options: HcsMigrationOptions;
  }) => Promise<never>;
  (shim.backend as unknown as Record<string, unknown>)[operation] = (r: { options: HcsMigrationOptions }) => {
    seen.push(r.options);
    return original(r);
  };
  return seen;
}

const ops = (shim: Shim) => shim.backend.calls.map((c) => c.operation);

describe("controller_source_test.go", () => {
  go(
    "TestPrepareSource_RejectsInvalidArgs/EmptySessionID",
    "an empty session id is INVALID_ARGUMENT; Idle",
    async () => {
      const src = await startShim();
      expect(await code(src.client.prepareAndExportSandbox({ sessionId: "", initOptions: INIT }))).toBe(
        Code.InvalidArgument,
      );
      expect(src.service.session.state).toBe("Idle");
    },
  );

  go(
    "TestPrepareSource_RejectsWrongState",
    "another session active: FAILED_PRECONDITION, not a session mismatch",
    async () => {
      const src = await startShim();
      await exportSource(src, OTHER);
      expect(await code(src.client.prepareAndExportSandbox({ sessionId: SESSION, initOptions: INIT }))).toBe(
        Code.FailedPrecondition,
      );
    },
  );

  go(
    "TestPrepareSource_RejectsAlreadyPrepared",
    "the same session again: FAILED_PRECONDITION, state kept",
    async () => {
      const src = await startShim();
      await exportSource(src);
      expect(await code(src.client.prepareAndExportSandbox({ sessionId: SESSION, initOptions: INIT }))).toBe(
        Code.FailedPrecondition,
      );
      expect(src.service.session.state).toBe("SourceExported");
    },
  );

  go("TestPrepareSource_InitializeError", "the backend fails: the error, and Idle", async () => {
    const src = await startShim({ failures: { prepareSource: new Error("boom") } });
    expect(await code(src.client.prepareAndExportSandbox({ sessionId: SESSION, initOptions: INIT }))).toBe(
      Code.Internal,
    );
    expect(src.service.session.state).toBe("Idle");
  });

  go("TestPrepareSource_Success", "[D1] bound to the session as Source; options stamped Origin Source", async () => {
    const src = await startShim();
    const seen = captureOptions(src, "prepareSource");
    await src.client.prepareAndExportSandbox({ sessionId: SESSION }); // no init_options: accepted
    expect(src.service.session).toMatchObject({ state: "SourceExported", sessionId: SESSION, origin: "Source" });
    expect(seen).toEqual([{ Origin: "Source" }]);
  });

  go("TestExportState_VMSaveError", "a state that cannot be exported: the error, and Failed", async () => {
    const bad = statedState();
    bad.vm.memory.pageSize = 3;
    const src = await startShim({ state: bad });
    expect(await code(src.client.prepareAndExportSandbox({ sessionId: SESSION, initOptions: INIT }))).toBe(
      Code.Internal,
    );
    expect(src.service.session.state).toBe("Failed");
  });

  go(
    "TestExportState_Success",
    "[D8] the config is a save.v1.Payload, schema 1, its VM payload the state",
    async () => {
      const src = await startShim({ state: statedState(["c1"]) });
      const config = await exportSource(src);
      expect(config.typeUrl).toBe(SAVE_PAYLOAD_TYPE_URL);
      const payload = decodeSavePayload(config);
      expect(payload.schemaVersion).toBe(1);
      expect(decodeSandboxConfig(config)).toEqual(statedState(["c1"]));
      // Go's case has no pods; the reference shim exports its sandbox as one pod naming its containers.
      const pod = fromBinary(save.pod.PayloadSchema, payload.pods[0]!.value);
      expect(pod.podId).toBe("pod-1");
      expect(pod.containers.map((c) => fromBinary(save.linuxcontainer.PayloadSchema, c.value).containerId)).toEqual([
        "c1",
      ]);
      expect(src.service.session.state).toBe("SourceExported");
    },
  );
});

describe("controller_destination_test.go", () => {
  const invalidArgs: [string, () => Parameters<Shim["client"]["importSandbox"]>[0]][] = [
    ["EmptySessionID", () => ({ sessionId: "", sandboxId: "d", config: defaultConfig() })],
    ["EmptySandboxID", () => ({ sessionId: SESSION, sandboxId: "", config: defaultConfig() })],
    ["NilSavedState", () => ({ sessionId: SESSION, sandboxId: "d" })],
    [
      "WrongTypeURL",
      () => ({ sessionId: SESSION, sandboxId: "d", config: create(AnySchema, { typeUrl: "type.bogus" }) }),
    ],
  ];
  for (const [name, request] of invalidArgs) {
    go(`TestImportState_RejectsInvalidArgs/${name}`, "[D8] INVALID_ARGUMENT; Idle", async () => {
      const dst = await startShim();
      expect(await code(dst.client.importSandbox(request()))).toBe(Code.InvalidArgument);
      expect(dst.service.session.state).toBe("Idle");
    });
  }

  go(
    "TestImportState_RejectsInvalidArgs/StatedState",
    "[D8] a bare StatedState Any, as a real destination sees it",
    async () => {
      const dst = await startShim();
      const { vm } = decodeSavePayload(defaultConfig());
      expect(await code(importSandbox(dst, vm))).toBe(Code.InvalidArgument);
      expect(dst.service.session.state).toBe("Idle");
    },
  );

  go("TestImportState_RejectsUndecodableState/CorruptPayload", "bytes that do not parse: UNKNOWN; Idle", async () => {
    const dst = await startShim();
    const corrupt = create(AnySchema, { typeUrl: SAVE_PAYLOAD_TYPE_URL, value: new Uint8Array([0x08]) });
    expect(await code(importSandbox(dst, corrupt))).toBe(Code.Unknown);
    expect(dst.service.session.state).toBe("Idle");
  });

  go("TestImportState_RejectsUndecodableState/SchemaMismatch", "[D8] schema_version 2: INVALID_ARGUMENT", async () => {
    const dst = await startShim();
    const payload = create(save.migration.PayloadSchema, { schemaVersion: 2 });
    const any = create(AnySchema, {
      typeUrl: SAVE_PAYLOAD_TYPE_URL,
      value: toBinary(save.migration.PayloadSchema, payload),
    });
    expect(await code(importSandbox(dst, any))).toBe(Code.InvalidArgument);
    expect(dst.service.session.state).toBe("Idle");
  });

  go("TestImportState_RejectsAlreadyImported", "import again: FAILED_PRECONDITION", async () => {
    const dst = await startShim();
    await importSandbox(dst);
    expect(await code(importSandbox(dst))).toBe(Code.FailedPrecondition);
  });

  go("TestImportState_RejectsConflictingState", "another session prepared: FAILED_PRECONDITION", async () => {
    const dst = await startShim();
    await prepareDestination(dst, OTHER);
    expect(await code(importSandbox(dst))).toBe(Code.FailedPrecondition);
    expect(dst.service.session).toMatchObject({ state: "DestinationPrepared", sessionId: OTHER });
  });

  go("TestImportState_RejectsWrongVMState", "the backend's own precondition passes through; Idle", async () => {
    const dst = await startShim({ failures: { importSandbox: new TtrpcError("vm exists", Code.FailedPrecondition) } });
    expect(await code(importSandbox(dst))).toBe(Code.FailedPrecondition);
    expect(dst.service.session.state).toBe("Idle");
  });

  go("TestImportState_VMImportError", "the backend fails: the error, and Idle", async () => {
    const dst = await startShim({ failures: { importSandbox: new Error("boom") } });
    expect(await code(importSandbox(dst))).toBe(Code.Internal);
    expect(dst.service.session.state).toBe("Idle");
  });

  go("TestImportState_Success", "DestinationImported, bound to the session, nothing pending", async () => {
    const dst = await startShim({}, { trackContainers: true });
    await importSandbox(dst, encodeSandboxConfig(statedState()));
    expect(dst.service.session).toMatchObject({
      state: "DestinationImported",
      sessionId: SESSION,
      origin: "Destination",
    });
    expect(dst.service.tasks.pendingContainers()).toEqual([]);
  });

  go(
    "TestImportState_PartialPodFailureIsAtomic",
    "a bogus pod after a good one: error, Idle, no backend call",
    async () => {
      const dst = await startShim({}, { trackContainers: true });
      const good = decodeSavePayload(encodeSandboxConfig(statedState(["ctr-1"])));
      const config = encodeSavePayload(good.vm!, [good.pods[0]!, create(AnySchema, { typeUrl: "type.bogus" })]);
      expect(await code(importSandbox(dst, config))).toBe(Code.Unknown);
      expect(dst.service.session.state).toBe("Idle");
      expect(dst.service.tasks.pendingContainers()).toEqual([]);
      expect(ops(dst)).toEqual([]);
    },
  );

  async function importedWith(containers: string[]): Promise<Shim> {
    const dst = await startShim({}, { trackContainers: true });
    await importSandbox(dst, encodeSandboxConfig(statedState(containers)));
    return dst;
  }
  const recreate = (shim: Shim, id: string, annotations?: Record<string, string>) =>
    code(Promise.resolve().then(() => shim.service.tasks.recreateContainer({ id, annotations })));

  for (const [name, id, annotations] of [
    ["EmptyRequestID", "", { [LIVE_MIGRATION_SOURCE_CONTAINER_ID]: "ctr-1" }],
    ["NilAnnotations", "dst-1", undefined],
    ["MissingSourceAnnotation", "dst-1", {}],
  ] as const) {
    go(`TestPatchResourcePaths_RejectsInvalidArgs/${name}`, "[D9] INVALID_ARGUMENT", async () => {
      const dst = await importedWith(["ctr-1"]);
      expect(await recreate(dst, id, annotations)).toBe(Code.InvalidArgument);
      expect(dst.service.tasks.pendingContainers()).toEqual(["ctr-1"]);
    });
  }

  go("TestPatchResourcePaths_RejectsWrongState", "[D9] Idle: FAILED_PRECONDITION", async () => {
    const dst = await startShim({}, { trackContainers: true });
    expect(await recreate(dst, "dst-1", { [LIVE_MIGRATION_SOURCE_CONTAINER_ID]: "ctr-1" })).toBe(
      Code.FailedPrecondition,
    );
  });

  go("TestPatchResourcePaths_RejectsAlreadyPatched", "[D9] a second re-creation: not pending (UNKNOWN)", async () => {
    const dst = await importedWith(["ctr-1"]);
    const ann = { [LIVE_MIGRATION_SOURCE_CONTAINER_ID]: "ctr-1" };
    expect(dst.service.tasks.recreateContainer({ id: "dst-1", annotations: ann })).toBe("ctr-1");
    expect(await recreate(dst, "dst-1", ann)).toBe(Code.Unknown);
  });

  go(
    "TestPatchResourcePaths_RejectsAnnotationMismatch",
    "[D9] container-type sandbox on a plain container: INVALID_ARGUMENT",
    async () => {
      const dst = await importedWith(["ctr-1"]);
      const ann = { [LIVE_MIGRATION_SOURCE_CONTAINER_ID]: "ctr-1", [KUBERNETES_CONTAINER_TYPE]: "sandbox" };
      expect(await recreate(dst, "dst-1", ann)).toBe(Code.InvalidArgument);
      expect(dst.service.tasks.pendingContainers()).toEqual(["ctr-1"]);
    },
  );

  go(
    "TestPrepareDestination_RejectsWrongState",
    "Idle (empty id passes the session check): FAILED_PRECONDITION",
    async () => {
      const dst = await startShim();
      expect(await code(dst.client.prepareSandbox({ sessionId: "", initOptions: INIT }))).toBe(Code.FailedPrecondition);
    },
  );

  go(
    "TestPrepareDestination_RejectsPendingPatches",
    "[D9] FAILED_PRECONDITION naming every pending container",
    async () => {
      const dst = await importedWith(["ctr-2", "ctr-1"]);
      const err = await dst.client
        .prepareSandbox({ sessionId: SESSION, initOptions: INIT })
        .catch((e: TtrpcError) => e);
      expect(err).toMatchObject({ code: Code.FailedPrecondition, message: expect.stringMatching(/\[ctr-1, ctr-2\]/) });
      expect(dst.service.tasks.isRecreation({ [LIVE_MIGRATION_SOURCE_CONTAINER_ID]: "ctr-1" })).toBe(true);
      for (const c of ["ctr-1", "ctr-2"]) {
        dst.service.tasks.recreateContainer({
          id: `new-${c}`,
          annotations: { [LIVE_MIGRATION_SOURCE_CONTAINER_ID]: c },
        });
      }
      await dst.client.prepareSandbox({ sessionId: SESSION, initOptions: INIT });
      expect(dst.service.session.state).toBe("DestinationPrepared");
    },
  );

  go(
    "TestPrepareDestination_RejectsPendingPatches/task side",
    "[D9] the Task side: FAILED_PRECONDITION while not Idle, and hcsshim's annotation names",
    async () => {
      const shim = await startShim();
      const idle = () => code(Promise.resolve().then(() => shim.service.tasks.ensureIdle()));
      expect(await idle()).toBe("ok");
      await exportSource(shim);
      expect(await idle()).toBe(Code.FailedPrecondition);
      expect([LIVE_MIGRATION_SUPPORT_ENABLED, LIVE_MIGRATION_SOURCE_CONTAINER_ID]).toEqual([
        "io.microsoft.migration.support-enabled",
        "io.microsoft.migration.source-container-id",
      ]);
    },
  );

  go("TestPrepareDestination_CreateVMError", "the backend fails: the error, DestinationImported kept", async () => {
    const dst = await startShim({ failures: { prepareDestination: new Error("boom") } });
    await importSandbox(dst);
    expect(await code(dst.client.prepareSandbox({ sessionId: SESSION, initOptions: INIT }))).toBe(Code.Internal);
    expect(dst.service.session.state).toBe("DestinationImported");
  });

  go("TestPrepareDestination_Success", "[D1] DestinationPrepared; options stamped Origin Destination", async () => {
    const dst = await startShim();
    const seen = captureOptions(dst, "prepareDestination");
    await importSandbox(dst);
    await dst.client.prepareSandbox({ sessionId: SESSION });
    expect(dst.service.session.state).toBe("DestinationPrepared");
    expect(seen).toEqual([{ Origin: "Destination" }]);
  });
});

describe("controller_test.go: session, Transfer", () => {
  go("TestNew", "a new shim is Idle", async () => {
    const shim = await startShim();
    expect(shim.service.session).toMatchObject({ state: "Idle", sessionId: "" });
  });

  go("TestSessionIDToUint32", "deterministic, and a GUID's case does not matter", () => {
    const lower = "5f0b1190-63be-4e0c-b974-bd0f55675a42";
    expect(sessionNumber(lower)).toBe(sessionNumber(lower));
    expect(sessionNumber(lower.toUpperCase())).toBe(sessionNumber(lower));
  });

  go("TestTransfer_RejectsSessionMismatch", "INVALID_ARGUMENT", async () => {
    const src = await startShim();
    await exportSource(src);
    expect(await code(src.client.transferSandbox({ sessionId: OTHER }))).toBe(Code.InvalidArgument);
  });

  go("TestTransfer_NoopWhenInProgress/SocketWaiting", "[D10] OK, unchanged", async () => {
    const src = await startShim();
    await exportSource(src);
    await src.client.transferSandbox({ sessionId: SESSION });
    await src.client.transferSandbox({ sessionId: SESSION });
    expect(src.service.session.state).toBe("SocketWaiting");
  });

  go("TestTransfer_NoopWhenInProgress/Transferring", "[D10] OK, unchanged, one backend transfer", async () => {
    const src = await startShim({ transfer: "gated" });
    await ready(src, "source");
    const events = await listen(src);
    await src.client.transferSandbox({ sessionId: SESSION });
    await events.until(Phase.TRANSFER_IN_PROGRESS);
    await src.client.transferSandbox({ sessionId: SESSION });
    expect(src.service.session.state).toBe("Transferring");
    src.backend.openGate();
    await events.until(Phase.DONE);
    expect(ops(src).filter((o) => o === "transfer")).toHaveLength(1);
  });

  go("TestTransfer_NoopWhenInProgress/TransferCompleted", "[D10] OK, unchanged", async () => {
    const src = await startShim();
    await transferred(src, "source");
    await src.client.transferSandbox({ sessionId: SESSION });
    expect(src.service.session.state).toBe("TransferCompleted");
  });

  go("TestTransfer_RejectsInvalidState", "[D10] Idle with the empty id: FAILED_PRECONDITION", async () => {
    const shim = await startShim();
    expect(await code(shim.client.transferSandbox({ sessionId: "" }))).toBe(Code.FailedPrecondition);
    await importSandbox(shim);
    expect(await code(shim.client.transferSandbox({ sessionId: SESSION }))).toBe(Code.FailedPrecondition);
  });

  go(
    "TestTransfer_ClaimsSocketWaiting",
    "[D10] SourceExported and DestinationPrepared move to SocketWaiting",
    async () => {
      const src = await startShim();
      await exportSource(src);
      await src.client.transferSandbox({ sessionId: SESSION, timeout: { seconds: 3600n, nanos: 0 } });
      expect(src.service.session.state).toBe("SocketWaiting");
      const dst = await startShim();
      await prepareDestination(dst);
      await dst.client.transferSandbox({ sessionId: SESSION });
      expect(dst.service.session.state).toBe("SocketWaiting");
      // The socket arriving then starts the transfer.
      const events = await listen(dst);
      await dst.client.createDuplicateSocket({ sessionId: SESSION, protocolInfo: testingEndpoint("d") });
      await events.until(Phase.DONE);
      expect(dst.service.session.state).toBe("TransferCompleted");
    },
  );

  go("TestTransfer_Success", "[D10] from SocketReady it runs to TransferCompleted", async () => {
    const src = await startShim();
    await transferred(src, "source");
    expect(src.service.session.state).toBe("TransferCompleted");
  });

  go(
    "TestTransfer_SocketTimeout",
    "[D10] [D3] the wait times out: Failed, PHASE_FAILED only to a subscriber",
    async () => {
      const src = await startShim();
      await exportSource(src);
      const events = await listen(src);
      await src.client.transferSandbox({ sessionId: SESSION, timeout: { seconds: 0n, nanos: 1_000_000 } });
      await events.until(Phase.FAILED);
      expect(src.service.session.state).toBe("Failed");
      expect(phases(events.items)).toEqual(["FAILED/SOURCE_FAILED"]);
      // Nobody subscribed: the session fails without any notification, even for a later subscriber.
      const quiet = await startShim();
      await exportSource(quiet);
      await quiet.client.transferSandbox({ sessionId: SESSION, timeout: { seconds: 0n, nanos: 1_000_000 } });
      await vi.waitFor(() => expect(quiet.service.session.state).toBe("Failed"), { timeout: 10_000 });
      const late = await listen(quiet);
      await quiet.client.cancel({ sessionId: SESSION });
      await late.until(Phase.FAILED);
      expect(phases(late.items)).toEqual(["FAILED/CANCELLED"]);
    },
  );

  go("TestTransfer_CompletionDoesNotClobberCancel", "a transfer ending after Cancel leaves Cancelled", async () => {
    const src = await startShim({ transfer: "gated" });
    await ready(src, "source");
    const events = await listen(src);
    await src.client.transferSandbox({ sessionId: SESSION });
    await events.until(Phase.TRANSFER_IN_PROGRESS);
    await src.client.cancel({ sessionId: SESSION });
    src.backend.openGate();
    expect(src.service.session.state).toBe("Cancelled");
    expect(phases(events.items)).not.toContain("DONE/SUCCESS");
  });
});

describe("controller_test.go: Finalize", () => {
  go(
    "TestFinalize_RejectsUnspecifiedAction",
    "[D7] INVALID_ARGUMENT before the session check, even while Idle",
    async () => {
      const shim = await startShim();
      const unspecified = FinalizeAction.UNSPECIFIED;
      expect(await code(shim.client.finalizeSandbox({ sessionId: "", action: unspecified }))).toBe(
        Code.InvalidArgument,
      );
      // The empty id passes while Idle: a real action is a no-op.
      expect(await code(shim.client.finalizeSandbox({ sessionId: "", action: FinalizeAction.STOP }))).toBe("ok");
      expect(ops(shim)).toEqual([]);
    },
  );

  go("TestFinalize_IdempotentFinalized", "[D7] a repeat on Finalized is OK", async () => {
    const src = await startShim();
    await transferred(src, "source");
    await src.client.finalizeSandbox({ sessionId: SESSION, action: FinalizeAction.STOP });
    await src.client.finalizeSandbox({ sessionId: SESSION, action: FinalizeAction.RESUME });
    expect(ops(src).filter((o) => o === "finalize")).toHaveLength(1);
  });

  async function cancelledDestination(): Promise<Shim> {
    const dst = await startShim();
    await ready(dst, "destination");
    await dst.client.cancel({ sessionId: SESSION });
    expect(dst.service.session.state).toBe("Cancelled");
    return dst;
  }

  go("TestFinalize_DestinationCancelledNoop", "[D7] STOP on a cancelled destination: OK, Cancelled kept", async () => {
    const dst = await cancelledDestination();
    await dst.client.finalizeSandbox({ sessionId: SESSION, action: FinalizeAction.STOP });
    expect(dst.service.session.state).toBe("Cancelled");
    expect(ops(dst)).not.toContain("finalize");
  });

  go(
    "TestFinalize_DestinationCancelledResumeSucceeds",
    "[D7] RESUME on a cancelled destination finalizes it",
    async () => {
      const dst = await cancelledDestination();
      await dst.client.finalizeSandbox({ sessionId: SESSION, action: FinalizeAction.RESUME });
      expect(dst.service.session.state).toBe("Finalized");
      expect(dst.backend.calls.filter((c) => c.operation === "finalize").map((c) => c.outcome)).toEqual([
        "destination-resume",
      ]);
    },
  );

  go("TestFinalize_RejectsWrongState", "Transferring: FAILED_PRECONDITION", async () => {
    const src = await startShim({ transfer: "gated" });
    await ready(src, "source");
    const events = await listen(src);
    await src.client.transferSandbox({ sessionId: SESSION });
    await events.until(Phase.TRANSFER_IN_PROGRESS);
    expect(await code(src.client.finalizeSandbox({ sessionId: SESSION, action: FinalizeAction.RESUME }))).toBe(
      Code.FailedPrecondition,
    );
    src.backend.openGate();
    await events.until(Phase.DONE);
  });

  go("TestFinalize_RejectsUnsupportedAction", "[D7] action 99: INVALID_ARGUMENT", async () => {
    const src = await startShim();
    await transferred(src, "source");
    expect(await code(src.client.finalizeSandbox({ sessionId: SESSION, action: 99 as FinalizeAction }))).toBe(
      Code.InvalidArgument,
    );
    expect(src.service.session.state).toBe("TransferCompleted");
  });

  go("TestFinalize_FinalizeError", "the backend fails: the error, TransferCompleted kept", async () => {
    const src = await startShim({ failures: { finalize: new Error("boom") } });
    await transferred(src, "source");
    expect(await code(src.client.finalizeSandbox({ sessionId: SESSION, action: FinalizeAction.STOP }))).toBe(
      Code.Internal,
    );
    expect(src.service.session.state).toBe("TransferCompleted");
  });

  for (const side of ["destination", "source"] as const) {
    go(`TestFinalize_ResumeSucceeds/${side}`, "[D7] finalize, then resume: Finalized", async () => {
      const shim = await startShim();
      await transferred(shim, side);
      await shim.client.finalizeSandbox({ sessionId: SESSION, action: FinalizeAction.RESUME });
      expect(shim.service.session.state).toBe("Finalized");
      expect(ops(shim).slice(-2)).toEqual(["finalize", "resume"]);
    });
    go(`TestFinalize_StopSucceeds/${side}`, "[D7] finalize, no resume: Finalized", async () => {
      const shim = await startShim();
      await transferred(shim, side);
      await shim.client.finalizeSandbox({ sessionId: SESSION, action: FinalizeAction.STOP });
      expect(shim.service.session.state).toBe("Finalized");
      expect(ops(shim).at(-1)).toBe("finalize");
    });
  }

  async function resumeFailed(): Promise<Shim> {
    const src = await startShim({ failures: { resume: new Error("boom") } });
    await transferred(src, "source");
    expect(await code(src.client.finalizeSandbox({ sessionId: SESSION, action: FinalizeAction.RESUME }))).toBe(
      Code.Internal,
    );
    expect(src.service.session.state).toBe("TransferCompleted");
    delete src.backend.options.failures!.resume;
    return src;
  }

  go("TestFinalize_ResumeError", "[D7] the resume fails: the error, TransferCompleted kept", async () => {
    await resumeFailed();
  });

  go("TestFinalize_StopAfterResumeTerminates", "[D7] STOP after a half-done RESUME terminates the VM", async () => {
    const src = await resumeFailed();
    await src.client.finalizeSandbox({ sessionId: SESSION, action: FinalizeAction.STOP });
    expect(src.service.session.state).toBe("Finalized");
    expect(src.backend.calls.filter((c) => c.operation === "finalize").map((c) => c.outcome)).toEqual([
      "source-resume",
      "source-stop",
    ]);
  });

  go("TestFinalize_ResumeAfterResumeReRunsResume", "[D7] RESUME again only resumes again", async () => {
    const src = await resumeFailed();
    await src.client.finalizeSandbox({ sessionId: SESSION, action: FinalizeAction.RESUME });
    expect(src.service.session.state).toBe("Finalized");
    expect(ops(src).filter((o) => o === "finalize" || o === "resume")).toEqual(["finalize", "resume", "resume"]);
  });
});

describe("controller_test.go: Cancel, Cleanup", () => {
  go("TestCancel_RejectsSessionMismatch", "[D5] INVALID_ARGUMENT; while Idle only the empty id passes", async () => {
    const shim = await startShim();
    expect(await code(shim.client.cancel({ sessionId: SESSION }))).toBe(Code.InvalidArgument);
    expect(await code(shim.client.cancel({ sessionId: "" }))).toBe("ok");
    await exportSource(shim);
    expect(await code(shim.client.cancel({ sessionId: OTHER }))).toBe(Code.InvalidArgument);
  });

  go("TestCancel_Idempotent", "[D5] a repeat is OK, Cancelled kept", async () => {
    const src = await startShim();
    await ready(src, "source");
    await src.client.cancel({ sessionId: SESSION });
    await src.client.cancel({ sessionId: SESSION });
    expect(src.service.session.state).toBe("Cancelled");
    expect(ops(src).filter((o) => o === "cancel")).toHaveLength(1);
  });

  go("TestCancel_Success", "[D5] after a completed transfer: Cancelled", async () => {
    const src = await startShim();
    await transferred(src, "source");
    await src.client.cancel({ sessionId: SESSION });
    expect(src.service.session.state).toBe("Cancelled");
  });

  go(
    "TestCancel_Success/InvalidState",
    "[D5] the backend finds it finished: Cancelled, and still UNKNOWN",
    async () => {
      const src = await startShim({ failures: { cancel: new MigrationInvalidStateError() } });
      await transferred(src, "source");
      expect(await code(src.client.cancel({ sessionId: SESSION }))).toBe(Code.Unknown);
      expect(src.service.session.state).toBe("Cancelled");
    },
  );

  async function failedSocket(): Promise<Shim> {
    const src = await startShim();
    await exportSource(src);
    const bad = new TextEncoder().encode("not a descriptor");
    expect(await code(src.client.createDuplicateSocket({ sessionId: SESSION, protocolInfo: bad }))).toBe(
      Code.InvalidArgument,
    );
    expect(src.service.session.state).toBe("Failed");
    return src;
  }

  go("TestCancel_VMError", "the backend fails from Failed: the error, Failed kept", async () => {
    const src = await failedSocket();
    src.backend.options.failures = { cancel: new Error("boom") };
    expect(await code(src.client.cancel({ sessionId: SESSION }))).toBe(Code.Internal);
    expect(src.service.session.state).toBe("Failed");
  });

  go("TestCancel_SocketReadyAlreadyClosed", "[D4] after a failed socket registration: Cancelled", async () => {
    const src = await failedSocket();
    await src.client.cancel({ sessionId: SESSION });
    expect(src.service.session.state).toBe("Cancelled");
  });

  go("TestCancel_DestinationImported", "[D5] straight to Cancelled, no backend cancel", async () => {
    const dst = await startShim();
    await importSandbox(dst);
    await dst.client.cancel({ sessionId: SESSION });
    expect(dst.service.session.state).toBe("Cancelled");
    expect(ops(dst)).not.toContain("cancel");
  });

  go("TestCleanup_NoopWhenIdle", "[D6] OK whatever the session id", async () => {
    const shim = await startShim();
    expect(await code(shim.client.cleanup({ sessionId: SESSION }))).toBe("ok");
    expect(await code(shim.client.cleanup({ sessionId: OTHER }))).toBe("ok");
    expect(ops(shim)).toEqual([]);
  });

  async function finalized(side: "source" | "destination" = "source"): Promise<Shim> {
    const shim = await startShim();
    await transferred(shim, side);
    await shim.client.finalizeSandbox({ sessionId: SESSION, action: FinalizeAction.STOP });
    return shim;
  }

  go("TestCleanup_RejectsSessionMismatch", "INVALID_ARGUMENT", async () => {
    const src = await finalized();
    expect(await code(src.client.cleanup({ sessionId: OTHER }))).toBe(Code.InvalidArgument);
  });

  go("TestCleanup_RejectsNotFinalized", "TransferCompleted: FAILED_PRECONDITION", async () => {
    const src = await startShim();
    await transferred(src, "source");
    expect(await code(src.client.cleanup({ sessionId: SESSION }))).toBe(Code.FailedPrecondition);
  });

  go("TestCleanup_Success", "Idle, the session forgotten", async () => {
    const src = await finalized();
    await src.client.cleanup({ sessionId: SESSION });
    expect(src.service.session).toMatchObject({ state: "Idle", sessionId: "", origin: undefined });
  });

  go("TestCleanup_DestinationCancelled", "a cancelled destination cleans up", async () => {
    const dst = await startShim();
    await importSandbox(dst);
    await dst.client.cancel({ sessionId: SESSION });
    await dst.client.cleanup({ sessionId: SESSION });
    expect(dst.service.session.state).toBe("Idle");
  });

  go("TestCleanup_ClosesSocketAndNotifier", "the socket is released and the streams end", async () => {
    const src = await startShim();
    await ready(src, "source");
    const events = await listen(src);
    await src.client.transferSandbox({ sessionId: SESSION });
    await events.until(Phase.DONE);
    await src.client.finalizeSandbox({ sessionId: SESSION, action: FinalizeAction.STOP });
    expect(src.backend.attached).toEqual({ name: "source" });
    await src.client.cleanup({ sessionId: SESSION });
    await events.done;
    expect(src.backend.attached).toBeUndefined();
    expect(src.service.session.subscribers).toBe(0);
  });
});

describe("controller_test.go: runTransfer, failTransfer", () => {
  go("TestRunTransfer_Destination", "a destination transfer completes", async () => {
    const dst = await startShim();
    const events = await transferred(dst, "destination");
    expect(events.items.every((r) => r.notification?.origin === Origin.DESTINATION)).toBe(true);
  });

  go("TestRunTransfer_StartError", "[D2] the transfer cannot run: Failed, PHASE_FAILED / SOURCE_FAILED", async () => {
    const src = await startShim({ transfer: "fail" });
    await ready(src, "source");
    const events = await listen(src);
    await src.client.transferSandbox({ sessionId: SESSION });
    await events.until(Phase.FAILED);
    expect(src.service.session.state).toBe("Failed");
    expect(phases(events.items)).toEqual(["SETUP_DONE/SUCCESS", "FAILED/SOURCE_FAILED"]);
  });

  go("TestRunTransfer_TransferError", "[D2] HCS reports a failure: its state, even to a late subscriber", async () => {
    const dst = await startShim({ transfer: "destination-failed" });
    await ready(dst, "destination");
    await dst.client.transferSandbox({ sessionId: SESSION });
    await vi.waitFor(() => expect(dst.service.session.state).toBe("Failed"), { timeout: 10_000 });
    const late = await listen(dst);
    await late.until(Phase.FAILED);
    expect(phases(late.items)).toEqual(["FAILED/DESTINATION_FAILED"]);
  });

  for (const side of ["source", "destination"] as const) {
    go(`TestFailTransfer_BroadcastsToSubscribers/${side}`, "[D2] [D3] the side's own failure state", async () => {
      const shim = await startShim({ transfer: "fail" });
      await ready(shim, side);
      const events = await listen(shim);
      await shim.client.transferSandbox({ sessionId: SESSION });
      await events.until(Phase.FAILED);
      expect(phases(events.items).at(-1)).toBe(
        side === "source" ? "FAILED/SOURCE_FAILED" : "FAILED/DESTINATION_FAILED",
      );
    });
  }

  go("TestFailTransfer_SkipsWhenCancelled", "a transfer failing after Cancel: Cancelled, no side failure", async () => {
    const src = await startShim({
      transfer: async (req) => {
        req.report.phase(Phase.SETUP_DONE);
        await new Promise((resolve) => req.signal.addEventListener("abort", resolve, { once: true }));
        throw new Error("torn down");
      },
    });
    await ready(src, "source");
    const events = await listen(src);
    await src.client.transferSandbox({ sessionId: SESSION });
    await events.until(Phase.SETUP_DONE);
    await src.client.cancel({ sessionId: SESSION });
    await events.until(Phase.FAILED);
    expect(src.service.session.state).toBe("Cancelled");
    expect(phases(events.items)).toEqual(["SETUP_DONE/SUCCESS", "FAILED/CANCELLED"]);
  });
});

describe("socket_test.go", () => {
  go("TestRegisterDuplicateSocket_TooSmall", "[D4] too short comes first: INVALID_ARGUMENT in any state", async () => {
    const src = await startShim();
    const empty = new Uint8Array();
    expect(await code(src.client.createDuplicateSocket({ sessionId: OTHER, protocolInfo: empty }))).toBe(
      Code.InvalidArgument,
    );
    await ready(src, "source");
    // Before ALREADY_EXISTS, and the session is not failed by it.
    expect(await code(src.client.createDuplicateSocket({ sessionId: SESSION, protocolInfo: empty }))).toBe(
      Code.InvalidArgument,
    );
    expect(src.service.session.state).toBe("SocketReady");
  });

  go("TestRegisterDuplicateSocket_SessionMismatch", "[D4] INVALID_ARGUMENT, before ALREADY_EXISTS", async () => {
    const src = await startShim();
    await ready(src, "source");
    const info = testingEndpoint("x");
    expect(await code(src.client.createDuplicateSocket({ sessionId: OTHER, protocolInfo: info }))).toBe(
      Code.InvalidArgument,
    );
  });

  go(
    "TestRegisterDuplicateSocket_RejectsAlreadyRegistered",
    "[D4] ALREADY_EXISTS, before the state check",
    async () => {
      const src = await startShim();
      await transferred(src, "source"); // TransferCompleted: the wrong state too
      expect(
        await code(src.client.createDuplicateSocket({ sessionId: SESSION, protocolInfo: testingEndpoint("again") })),
      ).toBe(Code.AlreadyExists);
      expect(src.service.session.state).toBe("TransferCompleted");
    },
  );

  go(
    "TestRegisterDuplicateSocket_InvalidState",
    "[D4] DestinationImported: FAILED_PRECONDITION, not failed",
    async () => {
      const dst = await startShim();
      await importSandbox(dst);
      expect(
        await code(dst.client.createDuplicateSocket({ sessionId: SESSION, protocolInfo: testingEndpoint("d") })),
      ).toBe(Code.FailedPrecondition);
      expect(dst.service.session.state).toBe("DestinationImported");
    },
  );

  go(
    "TestRegisterDuplicateSocket_EndToEnd",
    "[D4] a descriptor the backend accepts attaches: SocketReady",
    async () => {
      const src = await startShim();
      await ready(src, "source");
      expect(src.service.session).toMatchObject({ state: "SocketReady", socketAttached: true });
    },
  );

  go(
    "TestRegisterDuplicateSocket_EndToEnd/Unconnected",
    "[D4] an unconnected socket: FAILED_PRECONDITION, Failed, a waiting transfer wakes",
    async () => {
      const src = await startShim({
        failures: { attachSocket: new TtrpcError("not connected", Code.FailedPrecondition) },
      });
      await exportSource(src);
      const events = await listen(src);
      await src.client.transferSandbox({ sessionId: SESSION });
      expect(
        await code(src.client.createDuplicateSocket({ sessionId: SESSION, protocolInfo: testingEndpoint("s") })),
      ).toBe(Code.FailedPrecondition);
      await events.until(Phase.FAILED);
      expect(src.service.session.state).toBe("Failed");
      expect(phases(events.items)).toEqual(["FAILED/SOURCE_FAILED"]);
    },
  );
});

describe("notifications_test.go", () => {
  go(
    "TestNotificationsBroadcastDeliversToSubscriber",
    "message 1, SETUP_DONE, origin Source, both times set",
    async () => {
      const src = await startShim();
      const events = await transferred(src, "source");
      const first = events.items[0]!;
      expect(first.messageId).toBe(1);
      expect(first.notification).toMatchObject({ phase: Phase.SETUP_DONE, origin: Origin.SOURCE });
      expect(first.startTime).toBeDefined();
      expect(first.updateTime).toBeDefined();
    },
  );

  go("TestNotificationsBroadcastFansOutToAllSubscribers", "two subscribers both get message 1", async () => {
    const src = await startShim();
    await ready(src, "source");
    const a = await listen(src);
    const other = await src.connectAgain();
    const before = src.service.session.subscribers;
    const b = read(other.client.notifications({ sessionId: SESSION }));
    await vi.waitFor(() => expect(src.service.session.subscribers).toBe(before + 1), { timeout: 10_000 });
    await src.client.transferSandbox({ sessionId: SESSION });
    await Promise.all([a.until(Phase.DONE), b.until(Phase.DONE)]);
    expect(a.items[0]!.messageId).toBe(1);
    expect(b.items[0]!.messageId).toBe(1);
  });

  go("TestNotificationsBroadcastIncrementsMessageID", "ids count up from 1", async () => {
    const src = await startShim();
    const events = await transferred(src, "source");
    expect(events.items.map((r) => r.messageId)).toEqual(events.items.map((_, i) => i + 1));
  });

  go("TestNotificationsSubscribeReplaysLatest", "a late subscriber first gets the latest", async () => {
    const src = await startShim();
    const first = await transferred(src, "source");
    const late = await listen(src);
    await vi.waitFor(() => expect(late.items).toHaveLength(1), { timeout: 10_000 });
    expect(late.items[0]!.messageId).toBe(first.items.at(-1)!.messageId);
  });

  go(
    "TestNotificationsSubscribeAfterCloseFails",
    "[D3] while Cleanup runs: FAILED_PRECONDITION; after: the session is gone",
    async () => {
      const src = await finalizedShim();
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      const cleanup = src.backend.cleanup.bind(src.backend);
      let entered = false;
      src.backend.cleanup = async (req) => {
        entered = true;
        await held;
        return cleanup(req);
      };
      const pending = src.client.cleanup({ sessionId: SESSION });
      await vi.waitFor(() => expect(entered).toBe(true), { timeout: 10_000 });
      const during = await code(
        (async () => {
          for await (const _ of src.client.notifications({ sessionId: SESSION })) break;
        })(),
      );
      release();
      await pending;
      expect(during).toBe(Code.FailedPrecondition);
      const after = await code(
        (async () => {
          for await (const _ of src.client.notifications({ sessionId: SESSION })) break;
        })(),
      );
      expect(after).toBe(Code.InvalidArgument);
    },
  );

  go("TestNotificationsCloseClosesSubscribers", "Cleanup ends every open stream cleanly", async () => {
    const src = await finalizedShim();
    const events = await listen(src);
    await src.client.cleanup({ sessionId: SESSION });
    await expect(events.done).resolves.toBeUndefined();
  });

  go("TestNotificationsCloseIsIdempotent", "Cleanup twice: the second is Idle's no-op", async () => {
    const src = await finalizedShim();
    await src.client.cleanup({ sessionId: SESSION });
    await src.client.cleanup({ sessionId: SESSION });
    expect(ops(src).filter((o) => o === "cleanup")).toHaveLength(1);
  });

  go(
    "TestNotificationsSubscribeContextCancelDropsSubscriber",
    "a client that goes away stops counting; the rest still get events",
    async () => {
      const src = await startShim({ transfer: "gated" });
      await ready(src, "source");
      const stays = await listen(src);
      const other = await src.connectAgain();
      read(other.client.notifications({ sessionId: SESSION }));
      await vi.waitFor(() => expect(src.service.session.subscribers).toBe(2), { timeout: 10_000 });
      other.conn.close();
      await vi.waitFor(() => expect(src.service.session.subscribers).toBe(1), { timeout: 10_000 });
      await src.client.transferSandbox({ sessionId: SESSION });
      src.backend.openGate();
      await stays.until(Phase.DONE);
    },
  );

  go(
    "TestNotificationsBroadcastDoesNotBlockOnSlowSubscriber",
    "the notifier itself: a full queue drops, publishing goes on",
    () => {
      // As the Go test, on the notifier alone: over a socket the client reads for the subscriber.
      const n = createNotifier({ bufferSize: 64 });
      n.subscribe();
      for (let i = 0; i < 128; i++) n.publish({ phase: Phase.SETUP_DONE } as never);
      expect(n.latest?.messageId).toBe(128);
      expect(n.dropped).toBe(64);
    },
  );

  go(
    "TestControllerSubscribeNoActiveSession",
    "Idle: another id is INVALID_ARGUMENT, the empty id FAILED_PRECONDITION",
    async () => {
      const shim = await startShim();
      const sub = (sessionId: string) =>
        code(
          (async () => {
            for await (const _ of shim.client.notifications({ sessionId })) break;
          })(),
        );
      expect(await sub("any")).toBe(Code.InvalidArgument);
      expect(await sub("")).toBe(Code.FailedPrecondition);
    },
  );

  go("TestControllerSubscribeSessionMismatch", "INVALID_ARGUMENT", async () => {
    const src = await startShim();
    await exportSource(src);
    expect(
      await code(
        (async () => {
          for await (const _ of src.client.notifications({ sessionId: OTHER })) break;
        })(),
      ),
    ).toBe(Code.InvalidArgument);
  });

  go(
    "TestControllerSubscribeReusesExistingNotifier",
    "a second subscriber shares the counter and start_time",
    async () => {
      const src = await startShim();
      const first = await transferred(src, "source");
      const second = await listen(src);
      await vi.waitFor(() => expect(second.items).toHaveLength(1), { timeout: 10_000 });
      expect(second.items[0]!.startTime).toEqual(first.items[0]!.startTime);
    },
  );

  go(
    "TestControllerSubscribeCreatesNotifier",
    "[D3] made at the first subscribe: start_time is then; earlier events reach it",
    async () => {
      let clock = 1_000_000;
      const src = await startShim({}, { now: () => clock });
      await ready(src, "source");
      await src.client.transferSandbox({ sessionId: SESSION });
      await vi.waitFor(() => expect(src.service.session.state).toBe("TransferCompleted"), { timeout: 10_000 });
      clock = 2_000_000;
      const events = await listen(src);
      await vi.waitFor(() => expect(events.items).toHaveLength(1), { timeout: 10_000 });
      expect(events.items[0]!.notification?.phase).toBe(Phase.DONE);
      expect(Number(events.items[0]!.startTime!.seconds)).toBe(2000);
      expect(events.items[0]!.messageId).toBe(6); // SETUP_DONE ... BLACKOUT_EXITED, DONE: published when it was made
    },
  );
});

describe("parse_test.go", () => {
  go("TestInitializeOptionsFromProto/nil input returns nil", "[D1] only the origin", async () => {
    expect(initializeOptionsFromProto(undefined, "Source")).toEqual({ Origin: "Source" });
  });

  go(
    "TestInitializeOptionsFromProto/unsupported transport returns error",
    "[D1] UNKNOWN over the wire, both sides",
    async () => {
      const unspecified = { memoryTransport: MemoryTransport.UNSPECIFIED };
      const src = await startShim();
      expect(await code(src.client.prepareAndExportSandbox({ sessionId: SESSION, initOptions: unspecified }))).toBe(
        Code.Unknown,
      );
      // Before the session check: an empty id does not change the answer.
      expect(await code(src.client.prepareAndExportSandbox({ sessionId: "", initOptions: unspecified }))).toBe(
        Code.Unknown,
      );
      expect(src.service.session.state).toBe("Idle");
      const dst = await startShim();
      await importSandbox(dst);
      expect(
        await code(
          dst.client.prepareSandbox({ sessionId: SESSION, initOptions: { memoryTransport: 7 as MemoryTransport } }),
        ),
      ).toBe(Code.Unknown);
      expect(dst.service.session.state).toBe("DestinationImported");
    },
  );

  go("TestInitializeOptionsFromProto/nil nested params are preserved as nil", "absent keys", () => {
    const o = initializeOptionsFromProto({ memoryTransport: MemoryTransport.TCP } as never, "Source");
    expect(o).toEqual({ Origin: "Source", MemoryTransport: "TCP" });
  });

  go("TestInitializeOptionsFromProto/full conversion with nested params", "every field", () => {
    const o = initializeOptionsFromProto(
      {
        memoryTransport: MemoryTransport.TCP,
        memoryTransferThrottleParams: {
          skipThrottling: true,
          throttlingScale: 0.5,
          minimumThrottlePercentage: 10,
          targetNumberOfBrownoutTransferPasses: 3,
          startingBrownoutPassNumberForThrottling: 2,
          maximumNumberOfBrownoutTransferPasses: 8,
          targetBlackoutTransferTime: 100,
          blackoutTimeThresholdForCancellingMigration: 500,
        },
        compressionSettings: { throttleWorkerCount: 4 },
        checksumVerification: true,
        perfTracingEnabled: true,
        cancelIfBlackoutThresholdExceeds: true,
        prepareMemoryTransferMode: true,
      } as never,
      "Destination",
    );
    expect(o).toEqual({
      Origin: "Destination",
      MemoryTransport: "TCP",
      MemoryTransferThrottleParams: {
        SkipThrottling: true,
        ThrottlingScale: 0.5,
        MinimumThrottlePercentage: 10,
        TargetNumberOfBrownoutTransferPasses: 3,
        StartingBrownoutPassNumberForThrottling: 2,
        MaximumNumberOfBrownoutTransferPasses: 8,
        TargetBlackoutTransferTime: 100,
        BlackoutTimeThresholdForCancellingMigration: 500,
      },
      CompressionSettings: { ThrottleWorkerCount: 4 },
      ChecksumVerification: true,
      PerfTracingEnabled: true,
      CancelIfBlackoutThresholdExceeds: true,
      PrepareMemoryTransferMode: true,
    });
  });

  go("TestInitializeOptionsFromProto/minimum throttle percentage truncates to uint8", "300 becomes 44", () => {
    const o = initializeOptionsFromProto(
      {
        memoryTransport: MemoryTransport.TCP,
        memoryTransferThrottleParams: { minimumThrottlePercentage: 300 },
      } as never,
      "Source",
    );
    expect(o.MemoryTransferThrottleParams?.MinimumThrottlePercentage).toBe(44);
  });

  const S = PhaseState;
  const P = Phase;
  const phaseStates: [string, PhaseState | undefined, Phase, PhaseState][] = [
    ["success", S.SUCCESS, P.UNSPECIFIED, S.SUCCESS],
    ["cancelled", S.CANCELLED, P.UNSPECIFIED, S.CANCELLED],
    ["guest cancellation", S.GUEST_INITIATED_CANCELLATION, P.UNSPECIFIED, S.GUEST_INITIATED_CANCELLATION],
    ["source failed", S.SOURCE_FAILED, P.UNSPECIFIED, S.SOURCE_FAILED],
    ["destination failed", S.DESTINATION_FAILED, P.UNSPECIFIED, S.DESTINATION_FAILED],
    ["recovery failed", S.RECOVERY_FAILED, P.UNSPECIFIED, S.RECOVERY_FAILED],
    ["result wins over phase", S.SUCCESS, P.FAILED, S.SUCCESS],
    ["no result progress phase defaults to success", undefined, P.TRANSFER_IN_PROGRESS, S.SUCCESS],
    ["no result terminal phase is unspecified", undefined, P.DONE, S.UNSPECIFIED],
    ["no result unspecified phase is unspecified", undefined, P.UNSPECIFIED, S.UNSPECIFIED],
    ["invalid result falls through to progress phase", S.UNSPECIFIED, P.SETUP_DONE, S.SUCCESS],
    ["invalid result falls through to terminal phase", S.UNSPECIFIED, P.FAILED, S.UNSPECIFIED],
  ];
  for (const [name, result, phase, want] of phaseStates) {
    go(`TestToPhaseState/${name}`, "[D2] toPhaseState", () => {
      expect(toPhaseState(result, phase)).toBe(want);
    });
  }

  go("TestToPhaseState/over the wire", "[D2] DONE without a result from HCS is PHASE_STATE_UNSPECIFIED", async () => {
    const src = await startShim({
      transfer: async (req) => {
        req.report.phase(Phase.SETUP_DONE);
        return { ok: true, state: PhaseState.UNSPECIFIED };
      },
    });
    await ready(src, "source");
    const events = await listen(src);
    await src.client.transferSandbox({ sessionId: SESSION });
    await events.until(Phase.DONE);
    expect(phases(events.items)).toEqual(["SETUP_DONE/SUCCESS", "DONE/UNSPECIFIED"]);
  });

  go("TestToNotification/maps origin phase and state", "origin, phase and state of each notification", async () => {
    const dst = await startShim();
    const events = await transferred(dst, "destination");
    expect(phases(events.items)).toEqual(SUCCESSFUL_PHASES);
  });

  go("TestToNotification/blackout exited with valid details", "BLACKOUT_EXITED carries its details", async () => {
    const src = await startShim({ blackoutMs: 7 });
    const events = await transferred(src, "source");
    const exited = events.items.find((r) => r.notification?.phase === Phase.BLACKOUT_EXITED)!;
    expect(exited.notification?.phaseDetails.case).toBe("blackoutExited");
    expect(exited.notification?.phaseDetails.value).toMatchObject({ blackoutDurationMilliseconds: 7n });
  });

  go("TestToNotification/details ignored for non-blackout event", "other phases carry no details", async () => {
    const src = await startShim();
    const events = await transferred(src, "source");
    const others = events.items.filter((r) => r.notification?.phase !== Phase.BLACKOUT_EXITED);
    expect(others.every((r) => r.notification?.phaseDetails.case === undefined)).toBe(true);
  });
});

async function finalizedShim(): Promise<Shim> {
  const src = await startShim();
  await transferred(src, "source");
  await src.client.finalizeSandbox({ sessionId: SESSION, action: FinalizeAction.STOP });
  return src;
}

describe("coverage of hcsshim's tests", () => {
  const all = Object.values(GO_TESTS).flat();
  const fn = (name: string) => name.split("/")[0]!;

  it("every Go test function is ported or listed as not applicable, and nothing else is named", () => {
    const covered = new Set([...ported, ...Object.keys(NOT_APPLICABLE)].map(fn));
    expect(all.filter((name) => !covered.has(name))).toEqual([]);
    expect([...covered].filter((name) => !all.includes(name))).toEqual([]);
  });

  it("no case is both ported and listed as not applicable", () => {
    expect(Object.keys(NOT_APPLICABLE).filter((name) => ported.has(name))).toEqual([]);
  });

  it("every rule D1-D10 has a case over real sockets", () => {
    expect([...rules].sort((a, b) => Number(a.slice(1)) - Number(b.slice(1)))).toEqual(
      Array.from({ length: 10 }, (_, i) => `D${i + 1}`),
    );
  });

  afterAll(() => {
    // The table, printed for comparing coverage at a glance.
    const na = Object.entries(NOT_APPLICABLE).map(([name, why]) => `  n/a  ${name}: ${why}`);
    console.info(`hcsshim conformance: ${ported.size} Go cases ported, ${na.length} not applicable\n${na.join("\n")}`);
  });
});
