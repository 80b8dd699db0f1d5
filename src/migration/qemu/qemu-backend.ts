/**
 * The QEMU backend: a {@link MigrationBackend} whose sandbox is a real
 * `qemu-system-x86_64` process and whose transfer is QEMU's own live
 * migration, driven over QMP. The mapping (docs/migration.md):
 *
 * - PrepareAndExportSandbox: the migration's capabilities and parameters are
 *   set on the running source; the export is the device model (the
 *   {@link QemuVmSpec} with its versioned machine type) plus the QEMU version.
 * - ImportSandbox: the spec is checked, and the machine type against this
 *   host's QEMU. PrepareSandbox: the destination QEMU starts `-incoming defer`.
 * - CreateDuplicateSocket: a TMEP endpoint descriptor (as the simulated
 *   backend's); in "fd" mode the shim binds/dials and hands QEMU the
 *   connected socket with `getfd`, in "uri" mode QEMU connects itself.
 * - TransferSandbox: `migrate-incoming` / `migrate`; see the two transfer modules.
 * - Cancel: `migrate_cancel` (via the transfer's signal). Finalize: `quit`
 *   the side that is done, check (or `cont`) the source on RESUME.
 *
 * @module
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PhaseState } from "../../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_options_pb.js";
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
import type { HcsMigrationOptions, StatedState } from "../stated-state.js";
import { parseEndpointDescriptor, type EndpointDescriptor } from "../endpoint-descriptor.js";
import {
  dialWithToken,
  endpointProblem,
  handSocketToQemu,
  MigrationListener,
  migrationUri,
  type QemuSocketMode,
} from "./migration-socket.js";
import { runDestinationTransfer } from "./qemu-destination-transfer.js";
import { migrationSetup, sourceLimits } from "./qemu-options.js";
import { runSourceTransfer, type SourceProgress } from "./qemu-source-transfer.js";
import { probeQemu, QemuProcess, specProblem, versionString, type QemuVmSpec } from "./qemu-vm.js";
import { exportSpec, importSpec } from "./qemu-export.js";

/** What a {@link QemuBackend} reports: guest console lines and migration progress, per side. */
export type QemuBackendEvent =
  | { readonly type: "serial"; readonly side: "source" | "destination"; readonly line: string }
  | {
      readonly type: "vm";
      readonly side: "source" | "destination";
      readonly state: "started" | "stopped";
      readonly pid?: number;
    }
  | ({ readonly side: "source" } & SourceProgress)
  | { readonly type: "status"; readonly side: "destination"; readonly status: string };

/** Options of {@link QemuBackend}. */
export interface QemuBackendOptions {
  /** The VM this shim runs (a source); {@link QemuBackend.start} boots it. Without it the shim waits for an import. */
  readonly vm?: QemuVmSpec;
  /** The sandbox id a source exports. Default "qemu-sandbox". */
  readonly sandboxId?: string;
  /** Where QMP sockets and serial logs go. Default: a fresh temp folder, removed by {@link QemuBackend.close}. */
  readonly dir?: string;
  /** Default `qemu-system-x86_64` (on PATH). */
  readonly binary?: string;
  /** How the migration stream reaches QEMU (see migration-socket.ts). Default "uri". */
  readonly socket?: QemuSocketMode;
  /**
   * `max-bandwidth`, bytes/s. Default 4 GiB/s: QEMU 7.2's own default,
   * 128 MiB/s, caps a migration well below what the host can do.
   */
  readonly maxBandwidth?: number;
  /** Let `SkipThrottling: false` turn on QEMU's auto-converge. Off: under TCG it broke the guest in 2 of 4 runs. */
  readonly allowThrottling?: boolean;
  /** Told about serial lines and progress. */
  readonly observe?: (e: QemuBackendEvent) => void;
}

interface Session {
  readonly sessionId: string;
  listener?: MigrationListener;
  spec?: QemuVmSpec;
  options?: HcsMigrationOptions;
}

/**
 * A Migration shim's backend whose sandbox is one real QEMU process (see the
 * module comment for the mapping). One instance per shim; a source is
 * created with `vm` and started with {@link QemuBackend.start}, a
 * destination without. {@link QemuBackend.close} (or `await using`) reaps
 * whatever QEMU it still runs.
 */
export class QemuBackend implements MigrationBackend<EndpointDescriptor> {
  readonly #options: QemuBackendOptions;
  #dir: string | undefined;
  #vm: QemuProcess | undefined;
  #side: "source" | "destination" = "source";
  #session: Session | undefined;
  #stopSerial: (() => void) | undefined;

  constructor(options: QemuBackendOptions = {}) {
    const problem = options.vm === undefined ? undefined : specProblem(options.vm);
    if (problem !== undefined) throw new RangeError(`vm: ${problem}`);
    this.#options = options;
  }

  /** The QEMU this shim runs, if any. */
  get vm(): QemuProcess | undefined {
    return this.#vm;
  }

  /** Boots the source VM of `options.vm`. */
  async start(signal?: AbortSignal): Promise<QemuProcess> {
    const spec = this.#options.vm;
    if (spec === undefined) throw new Error("no vm in the options: this shim is a destination");
    if (this.#vm !== undefined) throw new Error("the VM is already started");
    return this.#spawn(spec, "source", false, signal);
  }

  async #spawn(
    spec: QemuVmSpec,
    side: "source" | "destination",
    incoming: boolean,
    signal?: AbortSignal,
  ): Promise<QemuProcess> {
    this.#dir ??= this.#options.dir ?? (await mkdtemp(join(tmpdir(), "ttrpc-es-qemu-")));
    const vm = await QemuProcess.start({
      spec,
      dir: this.#dir,
      name: side,
      incoming,
      ...(this.#options.binary === undefined ? {} : { binary: this.#options.binary }),
      ...(signal === undefined ? {} : { signal }),
    });
    this.#vm = vm;
    this.#side = side;
    this.#stopSerial = vm.serial.onLine((line) => this.#emit({ type: "serial", side, line }));
    this.#emit({ type: "vm", side, state: "started", ...(vm.pid === undefined ? {} : { pid: vm.pid }) });
    return vm;
  }

  async #stopVm(): Promise<void> {
    const vm = this.#vm;
    if (vm === undefined) return;
    this.#vm = undefined;
    await vm.serial.flush();
    this.#stopSerial?.();
    await vm[Symbol.asyncDispose]();
    this.#emit({ type: "vm", side: this.#side, state: "stopped" });
  }

  #emit(e: QemuBackendEvent): void {
    try {
      this.#options.observe?.(e);
    } catch {
      // an observer's bug must not break the migration
    }
  }

  #resources(session: BackendSession): Session {
    if (this.#session?.sessionId !== session.sessionId) this.#session = { sessionId: session.sessionId };
    return this.#session;
  }

  async prepareSource(request: PrepareSourceRequest): Promise<StatedState> {
    const vm = this.#vm;
    const spec = this.#options.vm;
    if (vm === undefined || spec === undefined || this.#side !== "source" || vm.exit !== undefined)
      throw new TtrpcError("no running QEMU sandbox to migrate on this shim", Code.FailedPrecondition);
    const status = await vm.status();
    if (status !== "running") throw new TtrpcError(`the source VM is ${status}, not running`, Code.FailedPrecondition);
    const setup = migrationSetup(request.options, this.#setupOptions());
    await vm.qmp.execute("migrate-set-capabilities", { capabilities: setup.capabilities });
    await vm.qmp.execute("migrate-set-parameters", setup.parameters);
    this.#resources(request).options = request.options;
    return exportSpec(spec, versionString(vm.qmp.version), this.#options.sandboxId ?? "qemu-sandbox", request);
  }

  #setupOptions() {
    return {
      socket: this.#options.socket ?? "uri",
      maxBandwidth: this.#options.maxBandwidth ?? 4 * 1024 ** 3,
      allowThrottling: this.#options.allowThrottling ?? false,
    } as const;
  }

  async importSandbox(request: ImportSandboxRequest): Promise<void> {
    if (this.#vm !== undefined) throw new TtrpcError("this shim already runs a QEMU sandbox", Code.FailedPrecondition);
    const { spec, version } = importSpec(request.state);
    const here = await probeQemu(this.#options.binary ?? "qemu-system-x86_64").catch((e: unknown) => {
      throw new TtrpcError(`cannot run QEMU on this host: ${(e as Error).message}`, Code.FailedPrecondition, {
        cause: e,
      });
    });
    const machine = spec.machine ?? "";
    if (!here.machines.has(machine))
      throw new TtrpcError(`this host's QEMU ${here.version} has no machine type ${machine}`, Code.FailedPrecondition);
    if (compareVersions(here.version, version) < 0)
      throw new TtrpcError(
        `this host's QEMU ${here.version} is older than the source's ${version}`,
        Code.FailedPrecondition,
      );
    this.#resources(request).spec = spec;
  }

  async prepareDestination(request: PrepareDestinationRequest): Promise<void> {
    const r = this.#resources(request);
    const spec = r.spec ?? importSpec(request.state).spec;
    // Capabilities must match the source's: the destination follows the options the source exported.
    const options = request.state.initOptions ?? request.options;
    const setup = migrationSetup(options, this.#setupOptions());
    const vm = await this.#spawn(spec, "destination", true, request.signal);
    try {
      await vm.qmp.execute("migrate-set-capabilities", { capabilities: setup.capabilities });
      if (setup.destinationParameters !== undefined)
        await vm.qmp.execute("migrate-set-parameters", setup.destinationParameters);
    } catch (e) {
      await this.#stopVm();
      throw e;
    }
    r.options = options;
  }

  parseEndpoint(protocolInfo: Uint8Array, session: BackendSession): EndpointDescriptor {
    const d = parseEndpointDescriptor(protocolInfo, session.sessionNumber);
    const problem = endpointProblem(
      d,
      session.origin === "Source" ? "source" : "destination",
      this.#options.socket ?? "uri",
    );
    if (problem !== undefined) throw problem;
    return d;
  }

  async attachSocket(request: AttachSocketRequest<EndpointDescriptor>): Promise<void> {
    const r = this.#resources(request);
    if ((this.#options.socket ?? "uri") === "fd" && request.endpoint.role === "listen")
      r.listener = await MigrationListener.bind(request.endpoint);
  }

  async transfer(request: TransferRequest<EndpointDescriptor>): Promise<TransferResult> {
    const vm = this.#vm;
    const source = request.origin === "Source";
    if (vm === undefined || vm.exit !== undefined)
      return {
        ok: false,
        state: source ? PhaseState.SOURCE_FAILED : PhaseState.DESTINATION_FAILED,
        message: "no QEMU on this shim",
      };
    const uri = await this.#streamUri(request, vm);
    if (uri === undefined) return { ok: false, state: PhaseState.CANCELLED, message: "cancelled while connecting" };
    if (!source)
      return runDestinationTransfer({
        vm,
        uri,
        report: request.report,
        signal: request.signal,
        observe: (status) => this.#emit({ type: "status", side: "destination", status }),
      });
    return runSourceTransfer({
      vm,
      uri,
      retryConnect: (this.#options.socket ?? "uri") === "uri",
      limits: sourceLimits(request.options),
      report: request.report,
      signal: request.signal,
      observe: (p) => this.#emit({ side: "source", ...p }),
    });
  }

  /** The URI QEMU uses; in fd mode, the rendezvous is made and the socket handed to QEMU first. */
  async #streamUri(request: TransferRequest<EndpointDescriptor>, vm: QemuProcess): Promise<string | undefined> {
    const d = request.endpoint;
    if ((this.#options.socket ?? "uri") === "uri") return migrationUri(d);
    const r = this.#resources(request);
    const getfd = (fd: number) => vm.qmp.execute("getfd", { fdname: "migration" }, fd);
    try {
      if (d.role === "listen") {
        const listener = r.listener;
        if (listener === undefined) throw new Error("no listener: CreateDuplicateSocket did not bind");
        delete r.listener;
        // A net.Server closes once its connections have: the accepted one goes to QEMU first.
        let closed: Promise<void> | undefined;
        try {
          const socket = await listener.accept(d.token, request.signal);
          closed = listener.close();
          await handSocketToQemu(socket, getfd, true);
        } finally {
          await (closed ?? listener.close());
        }
      } else {
        await handSocketToQemu(await dialWithToken(d, request.signal), getfd);
      }
    } catch (e) {
      if (request.signal.aborted) return undefined;
      throw e;
    }
    return "fd:migration";
  }

  async finalize(request: FinalizeRequest): Promise<FinalizeResult | undefined> {
    switch (request.outcome) {
      case "source-stop":
      case "destination-stop":
        await this.#stopVm();
        return;
      case "source-resume":
        return { recovered: await this.#recoverSource() };
      case "destination-resume": {
        const vm = this.#vm;
        if (vm === undefined || vm.exit !== undefined)
          throw new TtrpcError("no destination VM to resume", Code.FailedPrecondition);
        if ((await vm.status()) !== "running") await vm.qmp.execute("cont");
        return;
      }
    }
  }

  /**
   * After a failed or cancelled transfer the source must run again. QEMU 7.2
   * resumes it by itself after `failed`/`cancelled`, but a source whose
   * destination died can still be `active` (it never learns): cancel that
   * first. A source in `postmigrate` handed its guest over: never `cont` it.
   */
  async #recoverSource(): Promise<boolean> {
    const vm = this.#vm;
    if (vm === undefined || vm.exit !== undefined) return false;
    // Listening before asking: the event that ends the migration can arrive in
    // the same read as query-migrate's answer, before code after the await runs.
    const unneeded = new AbortController();
    const settled = vm.qmp.nextEvent(
      (e) => e.event === "MIGRATION" && ["cancelled", "failed", "completed"].includes(String(e.data.status)),
      unneeded.signal,
    );
    settled.catch(() => undefined);
    try {
      const q = await vm.qmp.execute<{ status?: string }>("query-migrate");
      if (q.status === "active" || q.status === "setup" || q.status === "device" || q.status === "pre-switchover") {
        await vm.qmp.execute("migrate_cancel");
        await settled;
      }
      const status = await vm.status();
      if (status === "postmigrate") return false;
      if (status !== "running") await vm.qmp.execute("cont");
      return (await vm.status()) === "running";
    } catch {
      return false;
    } finally {
      unneeded.abort();
    }
  }

  async cancel(_request: SessionRequest): Promise<void> {
    // The transfer's signal was aborted: the source's transfer sends migrate_cancel;
    // the destination's QEMU exits by itself when the source cancels.
  }

  async cleanup(request: SessionRequest): Promise<void> {
    const r = this.#session;
    if (r === undefined || r.sessionId !== request.sessionId) return;
    this.#session = undefined;
    if (r.listener !== undefined) await r.listener.close();
    // A destination cleaned up without a RESUME never runs its VM.
    if (request.origin === "Destination" && this.#vm !== undefined) {
      const status = await this.#vm.status().catch(() => "gone");
      if (status !== "running") await this.#stopVm();
    }
  }

  /** Stops this shim's QEMU (if any) and removes the working folder. */
  async close(): Promise<void> {
    await this.#stopVm();
    if (this.#session?.listener !== undefined) await this.#session.listener.close();
    this.#session = undefined;
    if (this.#dir !== undefined && this.#options.dir === undefined)
      await rm(this.#dir, { recursive: true, force: true });
    this.#dir = undefined;
  }

  /** {@link QemuBackend.close}, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < 2; i++) if ((pa[i] ?? 0) !== (pb[i] ?? 0)) return (pa[i] ?? 0) - (pb[i] ?? 0);
  return 0;
}

/** A QEMU backend (see {@link QemuBackend}). */
export function createQemuBackend(options: QemuBackendOptions = {}): QemuBackend {
  return new QemuBackend(options);
}
