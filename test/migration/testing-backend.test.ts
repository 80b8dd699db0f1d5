// The testing backend on its own: its default export, what each transfer
// script reports and returns, its endpoint parser, and the calls it records.
// It is the product stand-in other tests drive a whole shim with (see
// docs/testing.md), so its own behaviour is checked here directly.
import { describe, expect, it } from "vitest";
import { Code, TtrpcError } from "ttrpc-es";
import { Phase, PhaseState, type TransferRequest, type TransferResult } from "ttrpc-es/migration";
import {
  createTestingBackend,
  testingEndpoint,
  type TestingEndpoint,
  type TestingTransfer,
} from "ttrpc-es/migration/testing";

const session = { sessionId: "s-1", sessionNumber: 7, origin: "Source" as const };

/** A transfer request whose reporter records what the backend reported. */
function transferRequest(signal = new AbortController().signal) {
  const reported: (Phase | "blackout-exited")[] = [];
  let blackout: unknown;
  const request: TransferRequest<TestingEndpoint> = {
    ...session,
    endpoint: { name: "e" },
    options: { Origin: "Source", MemoryTransport: "TCP" },
    state: {
      schemaVersion: 1,
      sandboxId: "sb",
      sessionId: "s-1",
      vm: { guestOs: "linux", processorCount: 1, memory: { sizeBytes: 4096, pageSize: 4096 } },
      containers: [],
      annotations: {},
    },
    signal,
    report: {
      phase: (p) => reported.push(p),
      blackoutExited: (r) => {
        reported.push("blackout-exited");
        blackout = r;
      },
    },
  };
  return { request, reported, blackout: () => blackout };
}

async function run(transfer: TestingTransfer, signal?: AbortSignal) {
  const backend = createTestingBackend({ transfer });
  const t = transferRequest(signal);
  const result: TransferResult = await backend.transfer(t.request);
  return { result, reported: t.reported };
}

describe("the testing backend", () => {
  it("exports a small Linux VM with one running container by default", async () => {
    const backend = createTestingBackend();
    const state = await backend.prepareSource({
      ...session,
      origin: "Source",
      options: {},
      signal: AbortSignal.abort(),
    });
    expect(state).toEqual({
      schemaVersion: 1,
      sandboxId: "sandbox-1",
      sessionId: "",
      vm: { guestOs: "linux", processorCount: 2, memory: { sizeBytes: 64 * 1024 * 1024, pageSize: 4096 } },
      containers: [{ id: "c1", state: "running", pid: 42 }],
      annotations: {},
    });
  });

  it("succeeds by default through every progress phase, with the blackout it was given", async () => {
    const backend = createTestingBackend({ blackoutMs: 17 });
    const t = transferRequest();
    expect(await backend.transfer(t.request)).toEqual({ ok: true });
    expect(t.reported).toEqual([
      Phase.SETUP_DONE,
      Phase.TRANSFER_IN_PROGRESS,
      Phase.BLACKOUT_STARTED,
      Phase.OFFLINE_DONE,
      "blackout-exited",
    ]);
    expect(t.blackout()).toMatchObject({ durationMs: 17 });
  });

  it("fails after SETUP_DONE with a thrown error on `fail`", async () => {
    const backend = createTestingBackend({ transfer: "fail" });
    const t = transferRequest();
    await expect(backend.transfer(t.request)).rejects.toThrow(new Error("simulated transfer failure"));
    expect(t.reported).toEqual([Phase.SETUP_DONE]);
  });

  it("reports a checksum mismatch on `destination-failed`", async () => {
    const { result, reported } = await run("destination-failed");
    expect(result).toEqual({ ok: false, state: PhaseState.DESTINATION_FAILED, message: "page checksum mismatch" });
    expect(reported).toEqual([Phase.SETUP_DONE, Phase.TRANSFER_IN_PROGRESS]);
  });

  it("cancels at the blackout on `blackout-threshold`", async () => {
    const { result, reported } = await run("blackout-threshold");
    expect(result).toEqual({
      ok: false,
      state: PhaseState.CANCELLED,
      message: "projected blackout exceeds the threshold",
    });
    expect(reported).toEqual([Phase.SETUP_DONE, Phase.TRANSFER_IN_PROGRESS, Phase.BLACKOUT_STARTED]);
  });

  it("ends a `hang` with the signal's reason, whether it aborts before or during the transfer", async () => {
    const reason = new TtrpcError("cancelled", Code.Canceled);
    // Aborted before it starts: a `gated` transfer whose gate opens at once still ends with the reason.
    const gated = createTestingBackend({ transfer: "gated" });
    const early = gated.transfer(transferRequest(AbortSignal.abort(reason)).request);
    gated.openGate();
    await expect(early).rejects.toBe(reason);
    const ac = new AbortController();
    const backend = createTestingBackend({ transfer: "hang" });
    const t = transferRequest(ac.signal);
    const pending = backend.transfer(t.request);
    // The transfer is waiting once TRANSFER_IN_PROGRESS is out; the reporter runs synchronously.
    expect(t.reported).toEqual([Phase.SETUP_DONE, Phase.TRANSFER_IN_PROGRESS]);
    ac.abort(reason);
    await expect(pending).rejects.toBe(reason);
  });

  it("hands a scripted function the request and returns its result", async () => {
    const backend = createTestingBackend({
      transfer: async (req) => ({ ok: false, state: PhaseState.SOURCE_FAILED, message: req.endpoint.name }),
    });
    const t = transferRequest();
    expect(await backend.transfer(t.request)).toEqual({ ok: false, state: PhaseState.SOURCE_FAILED, message: "e" });
    expect(t.reported).toEqual([]);
  });

  it("parses its own endpoint descriptor and names what is wrong with another", () => {
    const backend = createTestingBackend();
    expect(backend.parseEndpoint(testingEndpoint("dst-1.a_b"), session)).toEqual({ name: "dst-1.a_b" });
    const problem = (bytes: Uint8Array) => {
      try {
        backend.parseEndpoint(bytes, session);
      } catch (e) {
        expect(e).toBeInstanceOf(TtrpcError);
        expect((e as TtrpcError).code).toBe(Code.InvalidArgument);
        return (e as TtrpcError).rawMessage;
      }
      throw new Error("parsed");
    };
    // Invalid UTF-8 whose lenient decoding would still not be a descriptor.
    expect(problem(new Uint8Array([0x74, 0xff, 0x65]))).toBe("protocol_info is not UTF-8");
    // Invalid UTF-8 in the name: a lenient decoder would give U+FFFD, which the name pattern refuses too.
    const badName = new Uint8Array([...testingEndpoint("a"), 0xc3]);
    expect(problem(badName)).toBe("protocol_info is not UTF-8");
    expect(problem(testingEndpoint("has space"))).toBe("protocol_info is not a testing-endpoint/v1 descriptor");
    expect(problem(testingEndpoint("x".repeat(65)))).toBe("protocol_info is not a testing-endpoint/v1 descriptor");
    expect(backend.calls.map((c) => c.operation)).toEqual(Array(5).fill("parseEndpoint"));
  });

  it("records finalize and resume with their outcome, and throws a configured failure after recording", async () => {
    const failure = new TtrpcError("no", Code.Internal);
    const backend = createTestingBackend({ recovered: false });
    const signal = new AbortController().signal;
    const finalize = { ...session, outcome: "source-resume" as const, from: "failed" as const, signal };
    expect(await backend.finalize(finalize)).toEqual({ recovered: false });
    await backend.resume!(finalize);
    backend.options.failures = { resume: failure };
    await expect(backend.resume!({ ...finalize, outcome: "destination-resume" })).rejects.toBe(failure);
    expect(backend.calls).toEqual([
      { operation: "finalize", sessionId: "s-1", outcome: "source-resume" },
      { operation: "resume", sessionId: "s-1", outcome: "source-resume" },
      { operation: "resume", sessionId: "s-1", outcome: "destination-resume" },
    ]);
  });
});
