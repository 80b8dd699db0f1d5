/**
 * The simulated backend: a {@link MigrationBackend} whose sandbox is a
 * {@link SimulatedVm} and whose transfer is a real pre-copy live migration
 * of the VM's memory over the socket the endpoint descriptor names.
 *
 * @module
 */
import type { Server as NetServer } from "node:net";
import { Code } from "../../code.js";
import { TtrpcError } from "../../ttrpc-error.js";
import type {
  AttachSocketRequest,
  BackendSession,
  FinalizeRequest,
  FinalizeResult,
  ImportSandboxRequest,
  MigrationBackend,
  PrepareDestinationRequest,
  PrepareSourceRequest,
  SessionRequest,
  TransferRequest,
  TransferResult,
} from "../backend.js";
import { PhaseState } from "../../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_options_pb.js";
import type { StatedState } from "../stated-state.js";
import { parseEndpointDescriptor, type EndpointDescriptor } from "../endpoint-descriptor.js";
import { runDestination } from "./pre-copy-destination.js";
import { compressionWorkers, preCopyParams } from "./pre-copy-params.js";
import type { SourceFaults } from "./page-frames.js";
import { runSource } from "./pre-copy-source.js";
import { SimulatedVm, type SimulatedVmOptions } from "./simulated-vm.js";
import type { TransferEvent, TransferObserver, TransferStats } from "./transfer-events.js";
import { acceptPeer, bindListener, closeListener, connectPeer, type Link, MAX_CHANNELS } from "./transfer-link.js";

/** The annotation a source writes so the destination's guest dirties at the same rate. */
export const DIRTY_RATE_ANNOTATION = "ttrpc-es.simulated/dirty-pages-per-second";

/** What a {@link SimulatedBackend} hosts, reports to and, for tests, breaks. */
export interface SimulatedBackendOptions {
  /** A sandbox this shim runs from the start (a source). Without it the shim waits for an import. */
  readonly sandbox?: SimulatedVmOptions;
  /** Told about every transfer event (progress bars, logs, tests). */
  readonly observe?: TransferObserver;
  /** Faults to inject on purpose, for tests. */
  readonly faults?: SourceFaults;
  /**
   * Connections a transfer from this shim (the source) uses, like QEMU's
   * multifd channels: pages are striped over them. 1 … 16, default 1. The
   * destination follows the source's choice.
   */
  readonly channels?: number;
  /**
   * Hash the image digest's blocks during the passes (see block-digests.ts),
   * on either side. Default: with 3 cores or more (digestPlan).
   */
  readonly digestAhead?: boolean;
}

interface SessionResources {
  readonly sessionId: string;
  endpoint?: EndpointDescriptor;
  listener?: NetServer;
  links?: Link[];
  /** The destination's import, until PrepareSandbox creates the VM. */
  imported?: { sandboxId: string; state: StatedState };
}

export class SimulatedBackend implements MigrationBackend<EndpointDescriptor> {
  /** The sandbox this shim hosts, if any. */
  vm: SimulatedVm | undefined;
  /** The statistics of the last transfer that ended, on this side. */
  lastStats: TransferStats | undefined;
  #session: SessionResources | undefined;
  readonly #observers = new Set<TransferObserver>();
  readonly #faults: SourceFaults | undefined;
  readonly #channels: number;
  readonly #digestAhead: boolean | undefined;

  constructor(options: SimulatedBackendOptions = {}) {
    if (options.sandbox !== undefined) {
      this.vm = new SimulatedVm({ ...options.sandbox, fill: options.sandbox.fill ?? "pattern" });
      this.vm.run();
    }
    if (options.observe !== undefined) this.#observers.add(options.observe);
    this.#faults = options.faults;
    const channels = options.channels ?? 1;
    if (!Number.isInteger(channels) || channels < 1 || channels > MAX_CHANNELS)
      throw new RangeError(`channels ${channels} is not an integer from 1 to ${MAX_CHANNELS}`);
    this.#channels = channels;
    this.#digestAhead = options.digestAhead;
  }

  /** Adds a transfer observer; returns a function that removes it. */
  observe(observer: TransferObserver): () => void {
    this.#observers.add(observer);
    return () => this.#observers.delete(observer);
  }

  #emit = (event: TransferEvent): void => {
    if (event.type === "done" || event.type === "failed") this.lastStats = event.stats;
    for (const o of this.#observers) {
      try {
        o(event);
      } catch {
        // an observer's bug must not break the transfer
      }
    }
  };

  #resources(session: BackendSession): SessionResources {
    if (this.#session?.sessionId !== session.sessionId) {
      // A session that never cleaned up must not keep its socket bound for good.
      if (this.#session !== undefined) void release(this.#session);
      this.#session = { sessionId: session.sessionId };
    }
    return this.#session;
  }

  async prepareSource(request: PrepareSourceRequest): Promise<StatedState> {
    const vm = this.vm;
    if (vm === undefined || vm.status === "stopped")
      throw new TtrpcError("no running sandbox to migrate on this shim", Code.FailedPrecondition);
    this.#resources(request);
    return {
      schemaVersion: 1,
      sandboxId: vm.sandboxId,
      sessionId: request.sessionId,
      vm: {
        guestOs: "linux",
        processorCount: vm.processorCount,
        memory: { sizeBytes: vm.memory.sizeBytes, pageSize: vm.memory.pageSize },
      },
      containers: vm.containers.map((c) => ({ ...c })),
      initOptions: request.options,
      annotations: { [DIRTY_RATE_ANNOTATION]: String(vm.workload.dirtyPagesPerSecond) },
    };
  }

  async importSandbox(request: ImportSandboxRequest): Promise<void> {
    if (this.vm !== undefined && this.vm.status !== "stopped") {
      throw new TtrpcError(
        `this shim already hosts sandbox ${JSON.stringify(this.vm.sandboxId)}`,
        Code.FailedPrecondition,
      );
    }
    this.#resources(request).imported = { sandboxId: request.sandboxId, state: request.state };
  }

  async prepareDestination(request: PrepareDestinationRequest): Promise<void> {
    const r = this.#resources(request);
    const imported = r.imported ?? { sandboxId: request.state.sandboxId, state: request.state };
    const { memory, processorCount } = imported.state.vm;
    const rate = Number(imported.state.annotations[DIRTY_RATE_ANNOTATION] ?? "0");
    try {
      this.vm = new SimulatedVm({
        sandboxId: imported.sandboxId,
        memoryBytes: memory.sizeBytes,
        pageSize: memory.pageSize,
        processorCount,
        dirtyPagesPerSecond: Number.isFinite(rate) && rate >= 0 ? rate : 0,
        containers: imported.state.containers,
        fill: "zero",
      });
    } catch (e) {
      throw new TtrpcError(`cannot create the destination VM: ${(e as Error).message}`, Code.ResourceExhausted, {
        cause: e,
      });
    }
  }

  parseEndpoint(protocolInfo: Uint8Array, session: BackendSession): EndpointDescriptor {
    return parseEndpointDescriptor(protocolInfo, session.sessionNumber);
  }

  async attachSocket(request: AttachSocketRequest<EndpointDescriptor>): Promise<void> {
    const r = this.#resources(request);
    if (request.endpoint.role === "listen") r.listener = await bindListener(request.endpoint);
    r.endpoint = request.endpoint;
  }

  async transfer(request: TransferRequest<EndpointDescriptor>): Promise<TransferResult> {
    const r = this.#resources(request);
    const vm = this.vm;
    const side = request.origin === "Source" ? "source" : "destination";
    if (vm === undefined)
      return {
        ok: false,
        state: side === "source" ? PhaseState.SOURCE_FAILED : PhaseState.DESTINATION_FAILED,
        message: "no VM on this shim",
      };
    const d = request.endpoint;
    const maxPayload = Math.max(64 * 1024 * 1024, 8 + vm.memory.pageSize * 5);
    const channels = side === "source" ? this.#channels : undefined;
    let links: Link[];
    try {
      if (d.role === "listen") {
        const listener = r.listener;
        if (listener === undefined) throw new Error("no listener: CreateDuplicateSocket did not bind");
        delete r.listener;
        links = await acceptPeer(listener, d, side, request.signal, maxPayload, channels);
      } else {
        links = await connectPeer(d, side, request.signal, maxPayload, channels);
      }
    } catch (e) {
      if (request.signal.aborted)
        return { ok: false, state: PhaseState.CANCELLED, message: "cancelled while connecting" };
      throw e;
    }
    r.links = links;
    if (side === "source") {
      return runSource({
        vm,
        links,
        params: preCopyParams(request.options),
        report: request.report,
        signal: request.signal,
        observe: this.#emit,
        ...(this.#faults === undefined ? {} : { faults: this.#faults }),
        ...(this.#digestAhead === undefined ? {} : { digestAhead: this.#digestAhead }),
      });
    }
    const workers = compressionWorkers(request.options);
    return runDestination({
      vm,
      links,
      report: request.report,
      signal: request.signal,
      observe: this.#emit,
      ...(workers === undefined ? {} : { compressionWorkers: workers }),
      ...(this.#digestAhead === undefined ? {} : { digestAhead: this.#digestAhead }),
    });
  }

  async cancel(request: SessionRequest): Promise<void> {
    // The server aborted the transfer's signal; make sure the connection goes too.
    for (const l of this.#session?.links ?? []) l.socket.destroy();
    void request;
  }

  async finalize(request: FinalizeRequest): Promise<FinalizeResult | undefined> {
    const vm = this.vm;
    switch (request.outcome) {
      case "source-stop":
        vm?.stop();
        this.vm = undefined;
        return;
      case "source-resume":
        if (vm === undefined || vm.status === "stopped") return { recovered: false };
        vm.run();
        return { recovered: true };
      case "destination-stop":
        vm?.stop();
        this.vm = undefined;
        return;
      case "destination-resume":
        if (vm === undefined) throw new TtrpcError("no destination VM to resume", Code.FailedPrecondition);
        vm.run();
        return;
    }
  }

  async cleanup(request: SessionRequest): Promise<void> {
    const r = this.#session;
    if (r === undefined || r.sessionId !== request.sessionId) return;
    this.#session = undefined;
    await release(r);
    // A destination cleaned up without a RESUME never runs its VM.
    if (request.origin === "Destination" && this.vm !== undefined && this.vm.status === "created") this.vm = undefined;
  }

  /** Simulates the shim's process dying: every socket of the session goes at once, nothing is said. */
  crash(): void {
    if (this.#session !== undefined) void release(this.#session);
    this.vm?.stop();
  }
}

/** Drops a session's connections and closes its listener. */
async function release(r: SessionResources): Promise<void> {
  for (const l of r.links ?? []) l.socket.destroy();
  if (r.listener !== undefined) await closeListener(r.listener);
}

/** A simulated backend (see {@link SimulatedBackend}). */
export function createSimulatedBackend(options: SimulatedBackendOptions = {}): SimulatedBackend {
  return new SimulatedBackend(options);
}
