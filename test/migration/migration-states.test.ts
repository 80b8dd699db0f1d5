// The reference server's state machine and statuses: wrong order, wrong
// session ids, ALREADY_EXISTS, Cancel at each stage, the finalize matrix.
import { describe, expect, it } from "vitest";
import { Code, TtrpcError } from "ttrpc-es";
import { FinalizeAction, MemoryTransport } from "ttrpc-es/migration";
import {
  INIT,
  Phase,
  SESSION,
  code,
  defaultConfig,
  exportSource,
  listen,
  phases,
  prepareDestination,
  ready,
  startShim,
  testingEndpoint,
  transferred,
  type Shim,
} from "./shim.js";

const OTHER = "another-session";

// Every call that names an active session, with a given session id.
function calls(shim: Shim, sessionId: string): Record<string, () => Promise<unknown>> {
  const c = shim.client;
  return {
    prepareSandbox: () => c.prepareSandbox({ sessionId, initOptions: INIT }),
    createDuplicateSocket: () => c.createDuplicateSocket({ sessionId, protocolInfo: testingEndpoint("x") }),
    transferSandbox: () => c.transferSandbox({ sessionId }),
    finalizeSandbox: () => c.finalizeSandbox({ sessionId, action: FinalizeAction.STOP }),
    cancel: () => c.cancel({ sessionId }),
    cleanup: () => c.cleanup({ sessionId }),
    notifications: async () => {
      for await (const _ of c.notifications({ sessionId })) break;
    },
    prepareAndExportSandbox: () => c.prepareAndExportSandbox({ sessionId, initOptions: INIT }),
    importSandbox: () => c.importSandbox({ sessionId, sandboxId: "d", config: defaultConfig(sessionId || SESSION) }),
  };
}

describe("session ids", () => {
  it("rejects a session id that is not the active one with INVALID_ARGUMENT on every RPC but the two starters", async () => {
    const src = await startShim();
    await exportSource(src);
    // The starters check the state, not the id: any session but Idle is FAILED_PRECONDITION (hcsshim).
    const starters = new Set(["prepareAndExportSandbox", "importSandbox"]);
    for (const [name, call] of Object.entries(calls(src, OTHER))) {
      const want = starters.has(name) ? Code.FailedPrecondition : Code.InvalidArgument;
      expect([name, await code(call())]).toEqual([name, want]);
    }
    expect(src.service.session.state).toBe("SourceExported");
  });

  it("rejects an empty session id with INVALID_ARGUMENT on every RPC", async () => {
    const src = await startShim();
    await exportSource(src);
    for (const [name, call] of Object.entries(calls(src, ""))) {
      expect([name, await code(call())]).toEqual([name, Code.InvalidArgument]);
    }
  });

  it("with no session, calls other than the two starters are INVALID_ARGUMENT and Cleanup is a no-op", async () => {
    const shim = await startShim();
    const all = calls(shim, SESSION);
    for (const name of [
      "prepareSandbox",
      "createDuplicateSocket",
      "transferSandbox",
      "finalizeSandbox",
      "cancel",
      "notifications",
    ]) {
      expect([name, await code(all[name]!())]).toEqual([name, Code.InvalidArgument]);
    }
    expect(await code(all.cleanup!())).toBe("ok");
    expect(shim.backend.calls).toEqual([]);
  });

  it("ImportSandbox refuses a config exported by another session", async () => {
    const dst = await startShim();
    expect(
      await code(dst.client.importSandbox({ sessionId: SESSION, sandboxId: "d", config: defaultConfig(OTHER) })),
    ).toBe(Code.InvalidArgument);
    expect(dst.service.session.state).toBe("Idle");
  });
});

describe("bad input", () => {
  it("rejects a config that is not a valid StatedState", async () => {
    const dst = await startShim();
    const bad = [
      undefined,
      { typeUrl: "sandbox-spec/vm/v2/Spec/Spec", value: new Uint8Array() },
      { typeUrl: "sandbox-spec/vm/v2/StatedState/StatedState", value: new TextEncoder().encode("{") },
      {
        typeUrl: "sandbox-spec/vm/v2/StatedState/StatedState",
        value: new TextEncoder().encode('{"schema_version":2}'),
      },
    ];
    for (const config of bad) {
      expect(
        await code(dst.client.importSandbox({ sessionId: SESSION, sandboxId: "d", ...(config ? { config } : {}) })),
      ).toBe(Code.InvalidArgument);
    }
    expect(await code(dst.client.importSandbox({ sessionId: SESSION, sandboxId: "", config: defaultConfig() }))).toBe(
      Code.InvalidArgument,
    );
    expect(dst.backend.calls).toEqual([]);
  });

  it("rejects a transport other than TCP with UNKNOWN, as hcsshim's plain error", async () => {
    const src = await startShim();
    expect(
      await code(
        src.client.prepareAndExportSandbox({
          sessionId: SESSION,
          initOptions: { memoryTransport: MemoryTransport.UNSPECIFIED },
        }),
      ),
    ).toBe(Code.Unknown);
    expect(src.service.session.state).toBe("Idle");
    const dst = await startShim();
    await dst.client.importSandbox({ sessionId: SESSION, sandboxId: "d", config: defaultConfig() });
    const unspecified = { memoryTransport: MemoryTransport.UNSPECIFIED };
    expect(await code(dst.client.prepareSandbox({ sessionId: SESSION, initOptions: unspecified }))).toBe(Code.Unknown);
    expect(dst.service.session.state).toBe("DestinationImported");
  });

  it("rejects a malformed protocol_info without attaching anything, and the session fails (hcsshim)", async () => {
    for (const protocolInfo of [
      new Uint8Array(),
      new Uint8Array([0xff, 0xfe]),
      new TextEncoder().encode("testing-endpoint/v2:x"),
    ]) {
      const src = await startShim();
      await exportSource(src);
      expect(await code(src.client.createDuplicateSocket({ sessionId: SESSION, protocolInfo }))).toBe(
        Code.InvalidArgument,
      );
      expect(src.backend.attached).toBeUndefined();
      // An empty one fails the size check before anything else; the others fail past the state check.
      expect(src.service.session.state).toBe(protocolInfo.length === 0 ? "SourceExported" : "Failed");
    }
  });

  it("rejects FINALIZE_ACTION_UNSPECIFIED with INVALID_ARGUMENT in any state", async () => {
    const src = await startShim();
    await transferred(src, "source");
    expect(await code(src.client.finalizeSandbox({ sessionId: SESSION, action: FinalizeAction.UNSPECIFIED }))).toBe(
      Code.InvalidArgument,
    );
    expect(src.service.session.state).toBe("TransferCompleted");
  });
});

describe("wrong order", () => {
  // For each state a side can be in before the transfer: the calls that are
  // FAILED_PRECONDITION there.
  const cases: [string, (s: Shim) => Promise<void>, string[]][] = [
    [
      "SourceExported",
      (s) => exportSource(s).then(() => {}),
      ["prepareAndExportSandbox", "importSandbox", "prepareSandbox", "finalizeSandbox", "cleanup"],
    ],
    [
      "DestinationImported",
      (s) => s.client.importSandbox({ sessionId: SESSION, sandboxId: "d", config: defaultConfig() }).then(() => {}),
      [
        "prepareAndExportSandbox",
        "importSandbox",
        "createDuplicateSocket",
        "transferSandbox",
        "finalizeSandbox",
        "cleanup",
      ],
    ],
    [
      "DestinationPrepared",
      (s) => prepareDestination(s),
      ["prepareAndExportSandbox", "importSandbox", "prepareSandbox", "finalizeSandbox", "cleanup"],
    ],
    [
      "SocketReady",
      (s) => ready(s, "source"),
      ["prepareAndExportSandbox", "importSandbox", "prepareSandbox", "finalizeSandbox", "cleanup"],
    ],
    [
      "TransferCompleted",
      (s) => transferred(s, "source").then(() => {}),
      ["prepareAndExportSandbox", "importSandbox", "prepareSandbox", "createDuplicateSocket", "cleanup"],
    ],
  ];
  for (const [state, reach, refused] of cases) {
    it(`in ${state}: ${refused.join(", ")} are FAILED_PRECONDITION and change nothing`, async () => {
      const shim = await startShim();
      await reach(shim);
      expect(shim.service.session.state).toBe(state);
      const all = calls(shim, SESSION);
      for (const name of refused) {
        const want =
          name === "createDuplicateSocket" && state === "TransferCompleted"
            ? Code.AlreadyExists
            : Code.FailedPrecondition;
        expect([name, await code(all[name]!())]).toEqual([name, want]);
      }
      expect(shim.service.session.state).toBe(state);
    });
  }

  it("a second CreateDuplicateSocket is ALREADY_EXISTS, also while the transfer waits or runs", async () => {
    const src = await startShim({ transfer: "gated" });
    await ready(src, "source");
    expect(
      await code(src.client.createDuplicateSocket({ sessionId: SESSION, protocolInfo: testingEndpoint("again") })),
    ).toBe(Code.AlreadyExists);
    const events = await listen(src);
    await src.client.transferSandbox({ sessionId: SESSION });
    await events.until(Phase.TRANSFER_IN_PROGRESS);
    expect(
      await code(src.client.createDuplicateSocket({ sessionId: SESSION, protocolInfo: testingEndpoint("again") })),
    ).toBe(Code.AlreadyExists);
    expect(src.backend.attached).toEqual({ name: "source" });
    src.backend.openGate();
    await events.until(Phase.DONE);
  });

  it("TransferSandbox in Transferring and TransferCompleted is a no-op", async () => {
    const src = await startShim({ transfer: "gated" });
    await ready(src, "source");
    const events = await listen(src);
    await src.client.transferSandbox({ sessionId: SESSION });
    await events.until(Phase.TRANSFER_IN_PROGRESS);
    expect(src.service.session.state).toBe("Transferring");
    await src.client.transferSandbox({ sessionId: SESSION });
    src.backend.openGate();
    await events.until(Phase.DONE);
    await src.client.transferSandbox({ sessionId: SESSION });
    expect(src.service.session.state).toBe("TransferCompleted");
    expect(src.backend.calls.filter((c) => c.operation === "transfer")).toHaveLength(1);
  });

  it("a failing backend call answers with its status and leaves the state as it was (the socket: Failed)", async () => {
    const src = await startShim({ failures: { prepareSource: new TtrpcError("no VM", Code.NotFound) } });
    expect(await code(src.client.prepareAndExportSandbox({ sessionId: SESSION, initOptions: INIT }))).toBe(
      Code.NotFound,
    );
    expect(src.service.session.state).toBe("Idle");
    const dst = await startShim({ failures: { prepareDestination: new Error("boom"), attachSocket: new Error("no") } });
    await dst.client.importSandbox({ sessionId: SESSION, sandboxId: "d", config: defaultConfig() });
    expect(await code(dst.client.prepareSandbox({ sessionId: SESSION, initOptions: INIT }))).toBe(Code.Internal);
    expect(dst.service.session.state).toBe("DestinationImported");
    delete dst.backend.options.failures!.prepareDestination;
    await dst.client.prepareSandbox({ sessionId: SESSION, initOptions: INIT });
    expect(
      await code(dst.client.createDuplicateSocket({ sessionId: SESSION, protocolInfo: testingEndpoint("d") })),
    ).toBe(Code.Internal);
    // A socket that cannot be registered fails the session, as hcsshim's does.
    expect(dst.service.session.state).toBe("Failed");
  });
});

describe("transfer failures", () => {
  it("a source failure is PHASE_FAILED / SOURCE_FAILED; RESUME recovers with RECOVERY_DONE", async () => {
    const src = await startShim({ transfer: "fail" });
    await ready(src, "source");
    const events = await listen(src);
    await src.client.transferSandbox({ sessionId: SESSION });
    await events.until(Phase.FAILED);
    expect(src.service.session.state).toBe("Failed");
    expect(phases(events.items)).toEqual(["SETUP_DONE/SUCCESS", "FAILED/SOURCE_FAILED"]);
    await src.client.finalizeSandbox({ sessionId: SESSION, action: FinalizeAction.RESUME });
    await events.until(Phase.RECOVERY_DONE);
    expect(phases(events.items).at(-1)).toBe("RECOVERY_DONE/SUCCESS");
    expect(src.backend.calls.find((c) => c.operation === "finalize")?.outcome).toBe("source-resume");
    await src.client.cleanup({ sessionId: SESSION });
    await events.done;
  });

  it("a failed recovery is RECOVERY_DONE / RECOVERY_FAILED", async () => {
    const src = await startShim({ transfer: "fail", recovered: false });
    await ready(src, "source");
    const events = await listen(src);
    await src.client.transferSandbox({ sessionId: SESSION });
    await events.until(Phase.FAILED);
    await src.client.finalizeSandbox({ sessionId: SESSION, action: FinalizeAction.RESUME });
    await events.until(Phase.RECOVERY_DONE);
    expect(phases(events.items).at(-1)).toBe("RECOVERY_DONE/RECOVERY_FAILED");
  });

  it("a destination failure is PHASE_FAILED / DESTINATION_FAILED; STOP discards", async () => {
    const dst = await startShim({ transfer: "fail" });
    await ready(dst, "destination");
    const events = await listen(dst);
    await dst.client.transferSandbox({ sessionId: SESSION });
    await events.until(Phase.FAILED);
    expect(phases(events.items).at(-1)).toBe("FAILED/DESTINATION_FAILED");
    await dst.client.finalizeSandbox({ sessionId: SESSION, action: FinalizeAction.STOP });
    expect(dst.backend.calls.find((c) => c.operation === "finalize")?.outcome).toBe("destination-stop");
    await dst.client.cleanup({ sessionId: SESSION });
    expect(dst.service.session.state).toBe("Idle");
  });

  it("a backend result carries its own state: checksum mismatch, blackout threshold", async () => {
    for (const [transfer, want] of [
      ["destination-failed", ["SETUP_DONE/SUCCESS", "TRANSFER_IN_PROGRESS/SUCCESS", "FAILED/DESTINATION_FAILED"]],
      [
        "blackout-threshold",
        ["SETUP_DONE/SUCCESS", "TRANSFER_IN_PROGRESS/SUCCESS", "BLACKOUT_STARTED/SUCCESS", "FAILED/CANCELLED"],
      ],
    ] as const) {
      const src = await startShim({ transfer });
      await ready(src, "source");
      const events = await listen(src);
      await src.client.transferSandbox({ sessionId: SESSION });
      await events.until(Phase.FAILED);
      expect(phases(events.items)).toEqual(want);
      expect(src.service.session.state).toBe("Failed");
    }
  });

  it("no socket within the timeout fails the transfer", async () => {
    const src = await startShim();
    await exportSource(src);
    const events = await listen(src);
    await src.client.transferSandbox({ sessionId: SESSION, timeout: { seconds: 0n, nanos: 20_000_000 } });
    await events.until(Phase.FAILED);
    expect(phases(events.items)).toEqual(["FAILED/SOURCE_FAILED"]);
    expect(src.service.session.state).toBe("Failed");
    expect(
      await code(src.client.createDuplicateSocket({ sessionId: SESSION, protocolInfo: testingEndpoint("late") })),
    ).toBe(Code.FailedPrecondition);
  });

  it("a timeout ≤ 0 or absent waits the default time", async () => {
    const src = await startShim({}, { defaultSocketWaitMs: 20 });
    await exportSource(src);
    const events = await listen(src);
    await src.client.transferSandbox({ sessionId: SESSION, timeout: { seconds: -5n, nanos: 0 } });
    await events.until(Phase.FAILED);
    expect(src.service.session.state).toBe("Failed");
  });
});

describe("Cancel", () => {
  it("is valid at each stage and winds down through Finalize and Cleanup", async () => {
    const stages: [string, "source" | "destination", (s: Shim) => Promise<void>][] = [
      ["SourceExported", "source", (s) => exportSource(s).then(() => {})],
      ["SocketReady", "source", (s) => ready(s, "source")],
      [
        "SocketWaiting",
        "source",
        (s) =>
          exportSource(s)
            .then(() => s.client.transferSandbox({ sessionId: SESSION }))
            .then(() => {}),
      ],
      ["TransferCompleted", "source", (s) => transferred(s, "source").then(() => {})],
      ["DestinationPrepared", "destination", (s) => prepareDestination(s)],
      ["SocketReady", "destination", (s) => ready(s, "destination")],
      ["TransferCompleted", "destination", (s) => transferred(s, "destination").then(() => {})],
    ];
    for (const [state, side, reach] of stages) {
      const shim = await startShim();
      await reach(shim);
      expect(shim.service.session.state).toBe(state);
      const events = await listen(shim);
      await shim.client.cancel({ sessionId: SESSION });
      expect([state, shim.service.session.state]).toEqual([state, "Cancelled"]);
      await events.until(Phase.FAILED);
      expect(phases(events.items).at(-1)).toBe("FAILED/CANCELLED");
      // Repeat is a no-op.
      await shim.client.cancel({ sessionId: SESSION });
      if (side === "source") {
        expect(await code(shim.client.cleanup({ sessionId: SESSION }))).toBe(Code.FailedPrecondition);
        await shim.client.finalizeSandbox({ sessionId: SESSION, action: FinalizeAction.RESUME });
        await events.until(Phase.RECOVERY_DONE);
      } else {
        // STOP on a cancelled destination is a no-op; Cleanup goes straight on.
        await shim.client.finalizeSandbox({ sessionId: SESSION, action: FinalizeAction.STOP });
        expect(shim.backend.calls.some((c) => c.operation === "finalize")).toBe(false);
        expect(shim.service.session.state).toBe("Cancelled");
      }
      await shim.client.cleanup({ sessionId: SESSION });
      await events.done;
      expect(shim.service.session.state).toBe("Idle");
    }
  });

  it("stops a running transfer, whose own result is then ignored", async () => {
    const src = await startShim({ transfer: "hang" });
    await ready(src, "source");
    const events = await listen(src);
    await src.client.transferSandbox({ sessionId: SESSION });
    await events.until(Phase.TRANSFER_IN_PROGRESS);
    expect(src.service.session.state).toBe("Transferring");
    await src.client.cancel({ sessionId: SESSION });
    expect(src.service.session.state).toBe("Cancelled");
    await events.until(Phase.FAILED);
    expect(phases(events.items)).toEqual(["SETUP_DONE/SUCCESS", "TRANSFER_IN_PROGRESS/SUCCESS", "FAILED/CANCELLED"]);
    expect(src.backend.calls.map((c) => c.operation)).toContain("cancel");
  });

  it("in DestinationImported cancels at once; Cleanup follows", async () => {
    const dst = await startShim();
    await dst.client.importSandbox({ sessionId: SESSION, sandboxId: "d", config: defaultConfig() });
    await dst.client.cancel({ sessionId: SESSION });
    expect(dst.service.session.state).toBe("Cancelled");
    expect(dst.backend.calls.some((c) => c.operation === "cancel")).toBe(false);
    await dst.client.cleanup({ sessionId: SESSION });
    expect(dst.service.session.state).toBe("Idle");
  });

  it("after Finalize is FAILED_PRECONDITION", async () => {
    const src = await startShim();
    await transferred(src, "source");
    await src.client.finalizeSandbox({ sessionId: SESSION, action: FinalizeAction.STOP });
    expect(await code(src.client.cancel({ sessionId: SESSION }))).toBe(Code.FailedPrecondition);
  });

  it("that the backend cannot carry out leaves the session Failed, and can be retried", async () => {
    const src = await startShim({ failures: { cancel: new TtrpcError("busy", Code.Unavailable) } });
    await ready(src, "source");
    expect(await code(src.client.cancel({ sessionId: SESSION }))).toBe(Code.Unavailable);
    expect(src.service.session.state).toBe("Failed");
    delete src.backend.options.failures!.cancel;
    await src.client.cancel({ sessionId: SESSION });
    expect(src.service.session.state).toBe("Cancelled");
  });
});

describe("FinalizeSandbox matrix", () => {
  const matrix: ["source" | "destination", FinalizeAction, string][] = [
    ["source", FinalizeAction.STOP, "source-stop"],
    ["source", FinalizeAction.RESUME, "source-resume"],
    ["destination", FinalizeAction.STOP, "destination-stop"],
    ["destination", FinalizeAction.RESUME, "destination-resume"],
  ];
  for (const [side, action, outcome] of matrix) {
    it(`${side} ${FinalizeAction[action]} after a completed transfer is ${outcome}; a repeat is a no-op`, async () => {
      const shim = await startShim();
      const events = await transferred(shim, side);
      await shim.client.finalizeSandbox({ sessionId: SESSION, action });
      expect(shim.service.session.state).toBe("Finalized");
      await shim.client.finalizeSandbox({ sessionId: SESSION, action });
      await shim.client.finalizeSandbox({
        sessionId: SESSION,
        action: action === FinalizeAction.STOP ? FinalizeAction.RESUME : FinalizeAction.STOP,
      });
      expect(shim.backend.calls.filter((c) => c.operation === "finalize").map((c) => c.outcome)).toEqual([outcome]);
      // No recovery after a successful migration.
      expect(events.items.some((r) => r.notification!.phase === Phase.RECOVERY_DONE)).toBe(false);
      await shim.client.cleanup({ sessionId: SESSION });
      await events.done;
    });
  }

  it("a finalize the backend fails leaves the state, so it can be retried", async () => {
    const dst = await startShim({ failures: { finalize: new Error("resume failed") } });
    await transferred(dst, "destination");
    expect(await code(dst.client.finalizeSandbox({ sessionId: SESSION, action: FinalizeAction.RESUME }))).toBe(
      Code.Internal,
    );
    expect(dst.service.session.state).toBe("TransferCompleted");
    delete dst.backend.options.failures!.finalize;
    await dst.client.finalizeSandbox({ sessionId: SESSION, action: FinalizeAction.RESUME });
    expect(dst.service.session.state).toBe("Finalized");
  });
});
