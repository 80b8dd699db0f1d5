import { Code } from "../../code.js";
import { TtrpcError } from "../../ttrpc-error.js";
import { Phase, PhaseState } from "../../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_options_pb.js";
import type {
  BackendSession,
  FinalizeOutcome,
  FinalizeResult,
  MigrationBackend,
  TransferRequest,
  TransferResult,
} from "../backend.js";
import { STATED_STATE_SCHEMA_VERSION, type StatedState } from "../stated-state.js";

/** The backend operations a {@link TestingBackend} can be told to fail. */
export type TestingOperation =
  | "prepareSource"
  | "importSandbox"
  | "prepareDestination"
  | "attachSocket"
  | "cancel"
  | "finalize"
  | "resume"
  | "cleanup";

/**
 * How a {@link TestingBackend}'s transfer goes:
 * - `succeed`: SETUP_DONE, TRANSFER_IN_PROGRESS, BLACKOUT_STARTED, OFFLINE_DONE, BLACKOUT_EXITED, then
 *   success;
 * - `gated`: like `succeed`, but waits after TRANSFER_IN_PROGRESS until {@link TestingBackend.openGate};
 * - `hang`: SETUP_DONE, TRANSFER_IN_PROGRESS, then waits until cancelled;
 * - `fail`: SETUP_DONE, then fails with the side's default state (the transfer throws);
 * - `destination-failed`: SETUP_DONE, TRANSFER_IN_PROGRESS, then PHASE_STATE_DESTINATION_FAILED (a
 *   checksum mismatch);
 * - `blackout-threshold`: up to BLACKOUT_STARTED, then PHASE_STATE_CANCELLED (the projected blackout
 *   passed the threshold);
 * - a function: anything else.
 */
export type TestingTransfer =
  | "succeed"
  | "gated"
  | "hang"
  | "fail"
  | "destination-failed"
  | "blackout-threshold"
  | ((request: TransferRequest<TestingEndpoint>) => Promise<TransferResult>);

/** The parsed endpoint of a {@link TestingBackend}. */
export interface TestingEndpoint {
  readonly name: string;
}

/** One backend call a {@link TestingBackend} saw. */
export interface TestingCall {
  readonly operation: TestingOperation | "parseEndpoint" | "transfer";
  readonly sessionId: string;
  /** The finalize outcome, for `finalize`. */
  readonly outcome?: FinalizeOutcome;
}

/** Options of {@link createTestingBackend}. */
export interface TestingBackendOptions {
  /** What the source exports. Default: a small Linux VM `sandbox-1` with one running container. */
  state?: StatedState;
  /** Default `succeed`. */
  transfer?: TestingTransfer;
  /** Operations that throw the given error. */
  failures?: Partial<Record<TestingOperation, unknown>>;
  /** The blackout duration it reports. Default 5 ms. */
  blackoutMs?: number;
  /** What a source RESUME after a failure reports. Default true. */
  recovered?: boolean;
}

/**
 * A {@link MigrationBackend} that moves nothing and does what it is told, to
 * test orchestrators and the server itself without VMs or sockets. Its
 * `protocol_info` is UTF-8 `testing-endpoint/v1:NAME` (NAME: 1 to 64 of
 * `A-Z a-z 0-9 . _ -`); anything else is INVALID_ARGUMENT.
 */
export interface TestingBackend extends MigrationBackend<TestingEndpoint> {
  /** Change freely between calls. */
  options: TestingBackendOptions;
  /** Every call so far, in order. */
  readonly calls: readonly TestingCall[];
  /** The endpoint attached in the current session, if any. */
  readonly attached: TestingEndpoint | undefined;
  /** Lets a `gated` transfer go on. */
  openGate(): void;
}

/** The descriptor a {@link TestingBackend} accepts for an endpoint name. */
export function testingEndpoint(name: string): Uint8Array {
  return new TextEncoder().encode(`testing-endpoint/v1:${name}`);
}

const endpointPattern = /^testing-endpoint\/v1:([A-Za-z0-9._-]{1,64})$/;

function defaultState(): StatedState {
  return {
    schemaVersion: STATED_STATE_SCHEMA_VERSION,
    sandboxId: "sandbox-1",
    sessionId: "",
    vm: { guestOs: "linux", processorCount: 2, memory: { sizeBytes: 64 * 1024 * 1024, pageSize: 4096 } },
    containers: [{ id: "c1", state: "running", pid: 42 }],
    annotations: {},
  };
}

function newGate(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

function aborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
}

/** Creates a {@link TestingBackend}. */
export function createTestingBackend(options: TestingBackendOptions = {}): TestingBackend {
  const calls: TestingCall[] = [];
  let attached: TestingEndpoint | undefined;
  let gate = newGate();

  function step(operation: TestingOperation, session: BackendSession, extra: Partial<TestingCall> = {}): void {
    calls.push({ operation, sessionId: session.sessionId, ...extra });
    const failures = backend.options.failures ?? {};
    if (operation in failures) throw failures[operation];
  }

  async function transfer(req: TransferRequest<TestingEndpoint>): Promise<TransferResult> {
    const script = backend.options.transfer ?? "succeed";
    if (typeof script === "function") return script(req);
    const stop = aborted(req.signal);
    stop.catch(() => {}); // scripts that never wait on it must not leave a rejection unhandled
    req.report.phase(Phase.SETUP_DONE);
    if (script === "fail") throw new Error("simulated transfer failure");
    req.report.phase(Phase.TRANSFER_IN_PROGRESS);
    if (script === "hang") await stop;
    if (script === "gated") await Promise.race([gate.promise, stop]);
    if (script === "destination-failed") {
      return { ok: false, state: PhaseState.DESTINATION_FAILED, message: "page checksum mismatch" };
    }
    req.report.phase(Phase.BLACKOUT_STARTED);
    if (script === "blackout-threshold") {
      return { ok: false, state: PhaseState.CANCELLED, message: "projected blackout exceeds the threshold" };
    }
    req.report.phase(Phase.OFFLINE_DONE);
    const stoppedAtMs = Date.now();
    req.report.blackoutExited({ durationMs: backend.options.blackoutMs ?? 5, stoppedAtMs });
    return { ok: true };
  }

  const backend: TestingBackend = {
    options,
    calls,
    get attached() {
      return attached;
    },
    openGate() {
      gate.resolve();
    },
    async prepareSource(req) {
      step("prepareSource", req);
      return backend.options.state ?? defaultState();
    },
    async importSandbox(req) {
      step("importSandbox", req);
    },
    async prepareDestination(req) {
      step("prepareDestination", req);
    },
    parseEndpoint(protocolInfo: Uint8Array, session: BackendSession): TestingEndpoint {
      calls.push({ operation: "parseEndpoint", sessionId: session.sessionId });
      let text: string;
      try {
        text = new TextDecoder("utf-8", { fatal: true }).decode(protocolInfo);
      } catch {
        throw new TtrpcError("protocol_info is not UTF-8", Code.InvalidArgument);
      }
      const m = endpointPattern.exec(text);
      if (m === null)
        throw new TtrpcError("protocol_info is not a testing-endpoint/v1 descriptor", Code.InvalidArgument);
      return { name: m[1]! };
    },
    async attachSocket(req) {
      step("attachSocket", req);
      attached = req.endpoint;
    },
    async transfer(req) {
      calls.push({ operation: "transfer", sessionId: req.sessionId });
      return transfer(req);
    },
    async cancel(req) {
      step("cancel", req);
    },
    async finalize(req): Promise<FinalizeResult> {
      step("finalize", req, { outcome: req.outcome });
      return { recovered: backend.options.recovered ?? true };
    },
    async resume(req) {
      step("resume", req, { outcome: req.outcome });
    },
    async cleanup(req) {
      attached = undefined;
      gate = newGate();
      step("cleanup", req);
    },
  };
  return backend;
}
