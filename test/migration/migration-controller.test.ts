// The reference server's state machine (MigrationController) driven directly
// on the testing backend: each rule's error class, code and message (the
// message is what a shim's caller reads in the RPC status), the states a
// failure leaves behind, and the notifications a finalize reports. Where a
// test needs a backend call to wait or to record what it was asked, a thin
// wrapper around the testing backend stands in (the controller takes its
// backend as a parameter).
import { afterEach, describe, expect, it, vi } from "vitest";
import { Code, TtrpcError } from "ttrpc-es";
import { FinalizeAction, Phase, PhaseState, encodeSandboxConfig, type NotificationsResponse } from "ttrpc-es/migration";
import {
  createTestingBackend,
  testingEndpoint,
  type TestingBackend,
  type TestingBackendOptions,
} from "ttrpc-es/migration/testing";
import type { FinalizeRequest, MigrationBackend } from "../../src/migration/backend.js";
import { MigrationController } from "../../src/migration/migration-controller.js";
import { MigrationInvalidStateError } from "../../src/migration/migration-errors.js";
import type { TestingEndpoint } from "../../src/migration/testing/testing-backend.js";
import { drain, fakeTimeouts, rejection, thrown } from "../common.js";

const S = "s-1";
const OPTIONS = { Origin: "Source" as const };
const SOURCE_ID = "io.microsoft.migration.source-container-id";
const CONTAINER_TYPE = "io.kubernetes.cri.container-type";

function signal(): AbortSignal {
  return new AbortController().signal;
}

/** A promise and its resolver, to hold a backend call open. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

interface Rig {
  backend: TestingBackend;
  controller: MigrationController<TestingEndpoint>;
  errors: unknown[];
}

const open: MigrationController<TestingEndpoint>[] = [];
afterEach(async () => {
  for (const c of open.splice(0)) await c.close();
});

function rig(
  backend: MigrationBackend<TestingEndpoint> = createTestingBackend(),
  { trackContainers = false, onError }: { trackContainers?: boolean; onError?: (e: unknown) => void } = {},
): Rig {
  const errors: unknown[] = [];
  const controller = new MigrationController(backend, {
    notifier: { now: () => 1000 },
    now: () => 1000,
    onError: onError ?? ((e) => errors.push(e)),
    trackContainers,
  });
  open.push(controller);
  return { backend: backend as TestingBackend, controller, errors };
}

/** A rig whose backend holds each `method` call until `held.open()`, then runs the testing backend's. */
function heldRig(
  method: "attachSocket" | "cleanup",
  options: TestingBackendOptions = {},
): Rig & { held: ReturnType<typeof gate> } {
  const testing = createTestingBackend(options);
  const held = gate();
  const wait = async (req: never) => {
    await held.promise;
    await testing[method](req);
  };
  return { ...rig({ ...testing, [method]: wait }), held };
}

function config(session = S, containers: string[] = [], sandboxId = "sandbox-1") {
  return encodeSandboxConfig({
    schemaVersion: 1,
    sandboxId,
    sessionId: session,
    vm: { guestOs: "linux", processorCount: 1, memory: { sizeBytes: 1 << 20, pageSize: 4096 } },
    containers: containers.map((id) => ({ id, state: "running", pid: 1 })),
    annotations: {},
  });
}

async function source(r: Rig): Promise<void> {
  await r.controller.prepareSource(S, OPTIONS, signal());
}

async function imported(r: Rig, containers: string[] = [], sandboxId = "sandbox-1"): Promise<void> {
  await r.controller.importState({ sessionId: S, sandboxId: "sb", config: config(S, containers, sandboxId) }, signal());
}

async function destination(r: Rig): Promise<void> {
  await imported(r);
  await r.controller.prepareDestination(S, { Origin: "Destination" }, signal());
}

async function socketReady(r: Rig, side: "source" | "destination" = "source"): Promise<void> {
  if (side === "source") await source(r);
  else await destination(r);
  await r.controller.registerSocket(S, testingEndpoint(side), signal());
}

/** Transfers to its end; resolves once the background run settled. */
async function transferred(r: Rig, side: "source" | "destination" = "source"): Promise<void> {
  await socketReady(r, side);
  r.controller.transfer(S, 60_000);
  await r.controller.current!.transfer;
}

function phases(items: readonly NotificationsResponse[]): string[] {
  return items.map((n) => `${Phase[n.notification!.phase]}/${PhaseState[n.notification!.state]}`);
}

const boom = () => new Error("boom");

describe("MigrationController: opening a session", () => {
  it("PrepareAndExport refuses an empty session id, and a second session while one is active", async () => {
    const r = rig();
    expect(await rejection(r.controller.prepareSource("", OPTIONS, signal()), TtrpcError)).toMatchObject({
      code: Code.InvalidArgument,
      rawMessage: "session id is required",
    });
    await source(r);
    expect(await rejection(r.controller.prepareSource("s-2", OPTIONS, signal()), TtrpcError)).toMatchObject({
      code: Code.FailedPrecondition,
      rawMessage: 'controller is in state SourceExported for session "s-1"',
    });
  });

  it("a backend failure in PrepareAndExport is INTERNAL naming the step, and leaves the controller Idle", async () => {
    const r = rig(createTestingBackend({ failures: { prepareSource: boom() } }));
    expect(await rejection(r.controller.prepareSource(S, OPTIONS, signal()), TtrpcError)).toMatchObject({
      code: Code.Internal,
      rawMessage: "initialize live migration on source vm: boom",
    });
    expect(r.controller.current).toBeUndefined();
  });

  it("Import checks the session id, then the sandbox id, before it opens the config", async () => {
    const r = rig();
    // No config at all: the id checks must come first to be the answer.
    expect(
      await rejection(r.controller.importState({ sessionId: "", sandboxId: "sb" }, signal()), TtrpcError),
    ).toMatchObject({
      code: Code.InvalidArgument,
      rawMessage: "session id is required",
    });
    expect(
      await rejection(r.controller.importState({ sessionId: S, sandboxId: "" }, signal()), TtrpcError),
    ).toMatchObject({
      code: Code.InvalidArgument,
      rawMessage: "sandbox id is required",
    });
  });

  it("Import refuses a config another session exported", async () => {
    const r = rig();
    const e = await rejection(
      r.controller.importState({ sessionId: S, sandboxId: "sb", config: config("s-9") }, signal()),
      TtrpcError,
    );
    expect(e).toMatchObject({
      code: Code.InvalidArgument,
      rawMessage: 'config was exported by session "s-9", not "s-1"',
    });
    expect(r.controller.current).toBeUndefined();
  });

  it("a backend failure in Import is INTERNAL naming the step, and opens no session", async () => {
    const r = rig(createTestingBackend({ failures: { importSandbox: boom() } }));
    expect(await rejection(imported(r), TtrpcError)).toMatchObject({
      code: Code.Internal,
      rawMessage: "import vm controller: boom",
    });
    expect(r.controller.current).toBeUndefined();
  });

  it("PrepareSandbox needs DestinationImported, and names the state it found", async () => {
    const idle = rig();
    expect(
      await rejection(idle.controller.prepareDestination("", { Origin: "Destination" }, signal()), TtrpcError),
    ).toMatchObject({
      code: Code.FailedPrecondition,
      rawMessage: "prepare destination not valid in state Idle",
    });
    const src = rig();
    await source(src);
    expect(
      await rejection(src.controller.prepareDestination(S, { Origin: "Destination" }, signal()), TtrpcError),
    ).toMatchObject({
      code: Code.FailedPrecondition,
      rawMessage: "prepare destination not valid in state SourceExported",
    });
  });

  it("a backend failure in PrepareSandbox is INTERNAL naming the step, and the session stays imported", async () => {
    const r = rig(createTestingBackend({ failures: { prepareDestination: boom() } }));
    await imported(r);
    expect(
      await rejection(r.controller.prepareDestination(S, { Origin: "Destination" }, signal()), TtrpcError),
    ).toMatchObject({
      code: Code.Internal,
      rawMessage: "create destination vm: boom",
    });
    expect(r.controller.current?.state).toBe("DestinationImported");
  });
});

describe("MigrationController: CreateDuplicateSocket", () => {
  it("refuses an empty descriptor, a second socket, and a session not waiting for one", async () => {
    const r = rig();
    expect(await rejection(r.controller.registerSocket(S, new Uint8Array(0), signal()), TtrpcError)).toMatchObject({
      code: Code.InvalidArgument,
      rawMessage: "protocol info is 0 bytes",
    });
    expect(await rejection(r.controller.registerSocket("", testingEndpoint("a"), signal()), TtrpcError)).toMatchObject({
      code: Code.FailedPrecondition,
      rawMessage: "invalid register duplicate socket state (current: Idle)",
    });
    await socketReady(r);
    expect(await rejection(r.controller.registerSocket(S, testingEndpoint("b"), signal()), TtrpcError)).toMatchObject({
      code: Code.AlreadyExists,
      rawMessage: 'duplicate socket already registered for session "s-1"',
    });
    const dst = rig();
    await imported(dst);
    expect(await rejection(dst.controller.registerSocket(S, testingEndpoint("a"), signal()), TtrpcError)).toMatchObject(
      {
        code: Code.FailedPrecondition,
        rawMessage: "invalid register duplicate socket state (current: DestinationImported)",
      },
    );
  });

  it("a failed attach fails the session and frees the socket claim: a retry meets the state, not a duplicate", async () => {
    const r = rig(createTestingBackend({ failures: { attachSocket: boom() } }));
    await source(r);
    expect(await rejection(r.controller.registerSocket(S, testingEndpoint("a"), signal()), TtrpcError)).toMatchObject({
      code: Code.Internal,
      rawMessage: "register duplicate socket: boom",
    });
    expect(r.controller.current?.state).toBe("Failed");
    expect(await rejection(r.controller.registerSocket(S, testingEndpoint("a"), signal()), TtrpcError)).toMatchObject({
      code: Code.FailedPrecondition,
      rawMessage: "invalid register duplicate socket state (current: Failed)",
    });
  });

  it("a Cancel while the socket attaches wins: the session stays Cancelled whether the attach succeeds", async () => {
    const { held, ...r } = heldRig("attachSocket");
    await source(r);
    const registering = r.controller.registerSocket(S, testingEndpoint("a"), signal());
    await r.controller.cancel(S, signal());
    held.open();
    await registering;
    expect(r.controller.current?.state).toBe("Cancelled");
    expect(r.controller.current?.endpoint).toBeUndefined();
  });

  it("a Cancel while the socket attaches wins: the session stays Cancelled when the attach fails", async () => {
    const { held, ...r } = heldRig("attachSocket", { failures: { attachSocket: boom() } });
    await source(r);
    const registering = r.controller.registerSocket(S, testingEndpoint("a"), signal());
    await r.controller.cancel(S, signal());
    held.open();
    expect(await rejection(registering, TtrpcError)).toMatchObject({ code: Code.Internal });
    expect(r.controller.current?.state).toBe("Cancelled");
  });
});

describe("MigrationController: TransferSandbox", () => {
  it("refuses a transfer while Idle or before the session can transfer, naming the state", async () => {
    const r = rig();
    expect(thrown(() => r.controller.transfer("", 1000), TtrpcError)).toMatchObject({
      code: Code.FailedPrecondition,
      rawMessage: "transfer not valid in state Idle",
    });
    await imported(r);
    expect(thrown(() => r.controller.transfer(S, 1000), TtrpcError)).toMatchObject({
      code: Code.FailedPrecondition,
      rawMessage: "transfer not valid in state DestinationImported",
    });
  });

  it("a second TransferSandbox while the first has not started runs no second transfer", async () => {
    const r = rig();
    await socketReady(r);
    r.controller.transfer(S, 60_000);
    r.controller.transfer(S, 60_000);
    await r.controller.current!.transfer;
    expect(r.backend.calls.filter((c) => c.operation === "transfer")).toHaveLength(1);
    expect(r.controller.current?.state).toBe("TransferCompleted");
  });

  it("a background run that throws goes to onError", async () => {
    // onError itself throws once (from failTransfer): the run rejects, and
    // its rejection must still reach onError rather than vanish.
    const seen: unknown[] = [];
    const oops = new Error("observer broke");
    const r = rig(createTestingBackend({ transfer: "fail" }), {
      onError: (e) => {
        seen.push(e);
        if (seen.length === 1) throw oops;
      },
    });
    await socketReady(r);
    r.controller.transfer(S, 60_000);
    await r.controller.current!.transfer;
    expect(seen).toHaveLength(2);
    expect(seen[1]).toBe(oops);
  });

  it("the socket wait timing out fails the session, tells onError and announces PHASE_FAILED", async () => {
    fakeTimeouts();
    try {
      const r = rig();
      await source(r);
      const stream = r.controller.subscribe(S, signal());
      r.controller.transfer(S, 25);
      expect(r.controller.current?.state).toBe("SocketWaiting");
      const run = r.controller.current!.transfer!;
      await vi.advanceTimersByTimeAsync(25);
      await run;
      expect(r.controller.current?.state).toBe("Failed");
      expect(r.errors).toHaveLength(1);
      expect(r.errors[0]).toMatchObject({
        code: Code.FailedPrecondition,
        rawMessage: "timed out waiting for socket ready after 25 ms",
      });
      await r.controller.close();
      expect(phases((await drain(stream)).messages)).toEqual(["FAILED/SOURCE_FAILED"]);
    } finally {
      vi.useRealTimers();
    }
  });

  it("failTransfer leaves a cancelling, cancelled or no longer owned session as it is", async () => {
    const r = rig();
    await source(r);
    const s = r.controller.current!;
    for (const state of ["Cancelling", "Cancelled"] as const) {
      s.state = state;
      r.controller.failTransfer(s, boom());
      expect(s.state).toBe(state);
    }
    s.state = "Transferring";
    await r.controller.close();
    r.controller.failTransfer(s, boom());
    expect(s.state).toBe("Transferring");
    expect(r.errors).toEqual([]);
  });
});

describe("MigrationController: Notifications", () => {
  it("refuses a subscriber while Idle, and while the session is being cleaned up", async () => {
    const r0 = rig();
    expect(thrown(() => r0.controller.subscribe("", signal()), TtrpcError)).toMatchObject({
      code: Code.FailedPrecondition,
      rawMessage: "no migration session is active",
    });
    const { held, ...r } = heldRig("cleanup");
    await transferred(r);
    await r.controller.finalize(S, FinalizeAction.STOP, signal());
    const cleaning = r.controller.cleanup(S, signal());
    expect(thrown(() => r.controller.subscribe(S, signal()), TtrpcError)).toMatchObject({
      code: Code.FailedPrecondition,
      rawMessage: "migration session already terminated",
    });
    held.open();
    await cleaning;
    expect(r.controller.current).toBeUndefined();
  });
});

/** A testing backend that records each finalize request's `from` and can answer with a given result. */
function recordingFinalize(testing: TestingBackend, result?: () => { recovered?: boolean } | undefined) {
  const requests: FinalizeRequest[] = [];
  const backend: MigrationBackend<TestingEndpoint> = {
    ...testing,
    finalize: async (req) => {
      requests.push(req);
      const r = await testing.finalize(req);
      return result === undefined ? r : (result() as never);
    },
  };
  return { backend, requests };
}

describe("MigrationController: FinalizeSandbox", () => {
  it("refuses an unspecified action, a session that cannot finalize yet, and an unknown action", async () => {
    const r = rig();
    await socketReady(r);
    expect(await rejection(r.controller.finalize(S, FinalizeAction.UNSPECIFIED, signal()), TtrpcError)).toMatchObject({
      code: Code.InvalidArgument,
      rawMessage: "finalize action must be specified",
    });
    expect(await rejection(r.controller.finalize(S, FinalizeAction.STOP, signal()), TtrpcError)).toMatchObject({
      code: Code.FailedPrecondition,
      rawMessage: "finalize not valid in state SocketReady",
    });
    r.controller.transfer(S, 60_000);
    await r.controller.current!.transfer;
    expect(await rejection(r.controller.finalize(S, 7 as FinalizeAction, signal()), TtrpcError)).toMatchObject({
      code: Code.InvalidArgument,
      rawMessage: "unsupported finalize action 7",
    });
    expect(r.controller.current?.state).toBe("TransferCompleted");
  });

  it("a source STOP after a completed transfer finalizes the VM: Finalized, no RECOVERY_DONE", async () => {
    const r = rig();
    await transferred(r);
    const stream = r.controller.subscribe(S, signal());
    await r.controller.finalize(S, FinalizeAction.STOP, signal());
    expect(r.controller.current?.state).toBe("Finalized");
    expect(r.backend.calls.filter((c) => c.operation === "finalize").map((c) => c.outcome)).toEqual(["source-stop"]);
    await r.controller.cleanup(S, signal());
    expect(phases((await drain(stream)).messages)).toEqual(["DONE/SUCCESS"]);
  });

  it("tells the backend where the session came from: completed, failed or cancelled", async () => {
    const froms: string[] = [];
    for (const how of ["completed", "failed", "cancelled"] as const) {
      const { backend, requests } = recordingFinalize(
        createTestingBackend({ transfer: how === "failed" ? "fail" : "succeed" }),
      );
      const r = rig(backend);
      await socketReady(r);
      if (how === "cancelled") await r.controller.cancel(S, signal());
      else {
        r.controller.transfer(S, 60_000);
        await r.controller.current!.transfer;
      }
      await r.controller.finalize(S, FinalizeAction.RESUME, signal());
      froms.push(...requests.map((q) => `${q.outcome}/${q.from}`));
    }
    expect(froms).toEqual(["source-resume/completed", "source-resume/failed", "source-resume/cancelled"]);
  });

  it("a source RESUME after a failure reports RECOVERY_DONE: SUCCESS when the backend says nothing", async () => {
    const { backend } = recordingFinalize(createTestingBackend({ transfer: "fail" }), () => undefined);
    const r = rig(backend);
    await socketReady(r);
    const stream = r.controller.subscribe(S, signal());
    r.controller.transfer(S, 60_000);
    await r.controller.current!.transfer;
    await r.controller.finalize(S, FinalizeAction.RESUME, signal());
    await r.controller.cleanup(S, signal());
    expect(phases((await drain(stream)).messages)).toEqual([
      "SETUP_DONE/SUCCESS",
      "FAILED/SOURCE_FAILED",
      "RECOVERY_DONE/SUCCESS",
    ]);
  });

  it("a source RESUME whose VM did not recover reports RECOVERY_DONE / RECOVERY_FAILED", async () => {
    const r = rig(createTestingBackend({ recovered: false }));
    await socketReady(r);
    const stream = r.controller.subscribe(S, signal());
    await r.controller.cancel(S, signal());
    await r.controller.finalize(S, FinalizeAction.RESUME, signal());
    await r.controller.cleanup(S, signal());
    expect(phases((await drain(stream)).messages)).toEqual(["FAILED/CANCELLED", "RECOVERY_DONE/RECOVERY_FAILED"]);
  });

  it("a destination STOP after a failure reports no RECOVERY_DONE", async () => {
    const r = rig(createTestingBackend({ transfer: "fail" }));
    await socketReady(r, "destination");
    const stream = r.controller.subscribe(S, signal());
    r.controller.transfer(S, 60_000);
    await r.controller.current!.transfer;
    await r.controller.finalize(S, FinalizeAction.STOP, signal());
    expect(r.controller.current?.state).toBe("Finalized");
    await r.controller.cleanup(S, signal());
    expect(phases((await drain(stream)).messages)).toEqual(["SETUP_DONE/SUCCESS", "FAILED/DESTINATION_FAILED"]);
  });

  it("backend failures of finalize and resume are INTERNAL naming the step; the session is not Finalized", async () => {
    const r = rig(createTestingBackend({ failures: { finalize: boom() } }));
    await transferred(r);
    expect(await rejection(r.controller.finalize(S, FinalizeAction.STOP, signal()), TtrpcError)).toMatchObject({
      code: Code.Internal,
      rawMessage: "finalize live migration: boom",
    });
    expect(r.controller.current?.state).toBe("TransferCompleted");
    const r2 = rig(createTestingBackend({ failures: { resume: boom() } }));
    await transferred(r2, "destination");
    expect(await rejection(r2.controller.finalize(S, FinalizeAction.RESUME, signal()), TtrpcError)).toMatchObject({
      code: Code.Internal,
      rawMessage: "resume vm from migration: boom",
    });
    expect(r2.controller.current?.state).toBe("TransferCompleted");
  });
});

describe("MigrationController: Cancel and Cleanup", () => {
  it("Cancel after Finalized is FAILED_PRECONDITION", async () => {
    const r = rig();
    await transferred(r);
    await r.controller.finalize(S, FinalizeAction.STOP, signal());
    expect(await rejection(r.controller.cancel(S, signal()), TtrpcError)).toMatchObject({
      code: Code.FailedPrecondition,
      rawMessage: "cancel not valid in state Finalized",
    });
  });

  it("Cancel aborts a running transfer with CANCELLED 'migration cancelled'", async () => {
    const testing = createTestingBackend({ transfer: "hang" });
    let reason: unknown;
    const started = gate();
    const r = rig({
      ...testing,
      transfer: async (req) => {
        started.open();
        req.signal.addEventListener("abort", () => (reason = req.signal.reason), { once: true });
        return testing.transfer(req);
      },
    });
    await socketReady(r);
    r.controller.transfer(S, 60_000);
    await started.promise;
    expect(r.controller.current?.state).toBe("Transferring");
    await r.controller.cancel(S, signal());
    expect(reason).toMatchObject({ code: Code.Canceled, rawMessage: "migration cancelled" });
    expect(r.controller.current?.state).toBe("Cancelled");
  });

  it("a backend failure of Cancel is INTERNAL naming the step and fails the session", async () => {
    const r = rig(createTestingBackend({ failures: { cancel: boom() } }));
    await socketReady(r);
    expect(await rejection(r.controller.cancel(S, signal()), TtrpcError)).toMatchObject({
      code: Code.Internal,
      rawMessage: "cancel live migration: boom",
    });
    expect(r.controller.current?.state).toBe("Failed");
  });

  it("a Cancel the backend finds too late still cancels, and fails with that error itself", async () => {
    const late = new MigrationInvalidStateError();
    const r = rig(createTestingBackend({ failures: { cancel: late } }));
    await socketReady(r);
    expect(await rejection(r.controller.cancel(S, signal()), TtrpcError)).toBe(late);
    expect(r.controller.current?.state).toBe("Cancelled");
  });

  it("Cleanup of a source not finalized is FAILED_PRECONDITION naming origin and state", async () => {
    const r = rig();
    await source(r);
    expect(await rejection(r.controller.cleanup(S, signal()), TtrpcError)).toMatchObject({
      code: Code.FailedPrecondition,
      rawMessage: "cleanup not valid for Source in state SourceExported",
    });
  });

  it("a backend failure of Cleanup goes to onError; the controller is Idle all the same", async () => {
    const r = rig(createTestingBackend({ failures: { cleanup: boom() } }));
    await transferred(r);
    await r.controller.finalize(S, FinalizeAction.STOP, signal());
    await r.controller.cleanup(S, signal());
    expect(r.errors).toHaveLength(1);
    expect((r.errors[0] as Error).message).toBe("boom");
    expect(r.controller.current).toBeUndefined();
  });

  it("Cleanup aborts what still runs with CANCELLED 'migration session cleaned up'", async () => {
    const r = rig();
    await imported(r);
    const s = r.controller.current!;
    await r.controller.cancel(S, signal());
    await r.controller.cleanup(S, signal());
    expect(s.abort.signal.reason).toMatchObject({ code: Code.Canceled, rawMessage: "migration session cleaned up" });
  });

  it("the end of an old session's cleanup does not unset a session that replaced it", async () => {
    // Not reachable through the service, whose calls are serial; the
    // controller alone lets a slow PrepareAndExport land during a cleanup.
    const testing = createTestingBackend();
    const slowPrepare = gate();
    const slowCleanup = gate();
    let prepares = 0;
    const r = rig({
      ...testing,
      prepareSource: async (req) => {
        if (prepares++ === 0) await slowPrepare.promise;
        return testing.prepareSource(req);
      },
      cleanup: async (req) => {
        await slowCleanup.promise;
        await testing.cleanup(req);
      },
    });
    const first = r.controller.prepareSource("first", OPTIONS, signal());
    await r.controller.prepareSource("second", OPTIONS, signal());
    const ending = r.controller.close();
    slowPrepare.open();
    await first;
    slowCleanup.open();
    await ending;
    expect(r.controller.current?.sessionId).toBe("first");
  });
});

describe("MigrationController: the Task side's rules", () => {
  it("ensureIdle names the state of the session in progress", async () => {
    const r = rig();
    expect(() => r.controller.ensureIdle()).not.toThrow();
    await source(r);
    const e = thrown(() => r.controller.ensureIdle(), TtrpcError);
    expect(e).toMatchObject({
      code: Code.FailedPrecondition,
      rawMessage: "migration session is in progress (state: SourceExported)",
    });
  });

  it("a Task Create is a re-creation only when it names a source container", () => {
    const r = rig();
    expect(r.controller.isRecreation(undefined)).toBe(false);
    expect(r.controller.isRecreation({ other: "x" })).toBe(false);
    expect(r.controller.isRecreation({ [SOURCE_ID]: "c" })).toBe(true);
  });

  it("refuses a re-creation without an id, without the annotation, or outside DestinationImported", async () => {
    const r = rig(undefined, { trackContainers: true });
    expect(
      thrown(() => r.controller.recreateContainer({ id: "", annotations: { [SOURCE_ID]: "c" } }), TtrpcError),
    ).toMatchObject({ code: Code.InvalidArgument, rawMessage: "destination container id is required" });
    expect(thrown(() => r.controller.recreateContainer({ id: "d", annotations: {} }), TtrpcError)).toMatchObject({
      code: Code.InvalidArgument,
      rawMessage: 'annotation "io.microsoft.migration.source-container-id" is required',
    });
    expect(
      thrown(() => r.controller.recreateContainer({ id: "d", annotations: { [SOURCE_ID]: "c" } }), TtrpcError),
    ).toMatchObject({ code: Code.FailedPrecondition, rawMessage: "patch not valid in state Idle" });
    await source(r);
    expect(
      thrown(() => r.controller.recreateContainer({ id: "d", annotations: { [SOURCE_ID]: "c" } }), TtrpcError),
    ).toMatchObject({ code: Code.FailedPrecondition, rawMessage: "patch not valid in state SourceExported" });
  });

  it("checks the container-type annotation against whether the container is its pod's sandbox", async () => {
    const r = rig(undefined, { trackContainers: true });
    await imported(r, ["pod-1", "app", "app2", "app3", "app4"], "pod-1");
    const recreate = (source: string, type?: string) =>
      r.controller.recreateContainer({
        id: `new-${source}`,
        annotations: { [SOURCE_ID]: source, ...(type === undefined ? {} : { [CONTAINER_TYPE]: type }) },
      });
    expect(thrown(() => recreate("nope"), TtrpcError)).toMatchObject({
      code: Code.Unknown,
      rawMessage: 'source container "nope" is not pending a patch',
    });
    expect(thrown(() => recreate("pod-1", "container"), TtrpcError)).toMatchObject({
      code: Code.InvalidArgument,
      rawMessage:
        'annotation "io.kubernetes.cri.container-type"="container" disagrees with structural sandbox detection ' +
        '(sourceContainerID="pod-1", sourcePodID="pod-1")',
    });
    expect(thrown(() => recreate("app", "sandbox"), TtrpcError)).toMatchObject({ code: Code.InvalidArgument });
    // No annotation, an empty one, or one that agrees: accepted.
    expect(recreate("pod-1")).toBe("pod-1");
    expect(recreate("app", "")).toBe("app");
    expect(recreate("app2", "container")).toBe("app2");
    expect(recreate("app3")).toBe("app3");
    expect(r.controller.pendingContainers()).toEqual(["app4"]);
    const r2 = rig(undefined, { trackContainers: true });
    await imported(r2, ["pod-1"], "pod-1");
    expect(
      r2.controller.recreateContainer({ id: "x", annotations: { [SOURCE_ID]: "pod-1", [CONTAINER_TYPE]: "" } }),
    ).toBe("pod-1");
    const r3 = rig(undefined, { trackContainers: true });
    await imported(r3, ["pod-1"], "pod-1");
    expect(
      r3.controller.recreateContainer({ id: "x", annotations: { [SOURCE_ID]: "pod-1", [CONTAINER_TYPE]: "sandbox" } }),
    ).toBe("pod-1");
  });
});
