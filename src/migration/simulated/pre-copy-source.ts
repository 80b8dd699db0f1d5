/**
 * The source side of the pre-copy live migration: brownout passes while the
 * guest runs (throttled as the options say), then the blackout (guest
 * paused, the last dirty pages and the device state), then verification of
 * the whole image against the destination's.
 *
 * @module
 */
import { setImmediate as yieldToLoop } from "node:timers/promises";
import { Phase, PhaseState } from "../../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_options_pb.js";
import type { TransferReporter, TransferResult } from "../backend.js";
import { BlockDigests } from "./block-digests.js";
import { ChannelScheduler } from "./channel-scheduler.js";
import { ControlReader, PeerAbort } from "./control-reader.js";
import { PageFrames, type SourceFaults } from "./page-frames.js";
import { PassSender } from "./pass-sender.js";
import type { PreCopyParams } from "./pre-copy-params.js";
import type { SimulatedVm } from "./simulated-vm.js";
import type { TransferObserver } from "./transfer-events.js";
import { type Link, sendAbort } from "./transfer-link.js";
import { TransferTally } from "./transfer-tally.js";
import {
  AbortReason,
  decodePassAck,
  decodeResult,
  encodeDeviceState,
  encodeEmpty,
  encodeSetup,
  encodeVerify,
  MessageType,
  WireError,
} from "./wire-protocol.js";

export interface SourceTransfer {
  readonly vm: SimulatedVm;
  /** The connections, one per channel; the first also carries the control messages. */
  readonly links: readonly Link[];
  readonly params: PreCopyParams;
  readonly report: TransferReporter;
  readonly signal: AbortSignal;
  readonly observe: TransferObserver;
  readonly faults?: SourceFaults;
  /** Hash digest blocks during the passes; default {@link digestPlan}. */
  readonly digestAhead?: boolean;
}

/** Runs the source side of a transfer to its end; a failure is a result, not a throw. */
export function runSource(t: SourceTransfer): Promise<TransferResult> {
  return new PreCopySource(t).run();
}

/** How the brownout ended: its last pass's projected blackout. */
interface Brownout {
  readonly projectedMs: number;
}

/**
 * One source transfer: setup, the brownout's passes, the blackout, the
 * verification, and on any failure the Abort the destination is owed.
 */
class PreCopySource {
  readonly #t: SourceTransfer;
  readonly #tally: TransferTally;
  readonly #control: ControlReader;
  readonly #channels: ChannelScheduler;
  readonly #frames: PageFrames;
  readonly #passes: PassSender;
  /** The image digest's blocks, hashed from the start where a core is free for it (see digestPlan). */
  #digests: BlockDigests | undefined;

  constructor(t: SourceTransfer) {
    this.#t = t;
    this.#tally = new TransferTally("source", t.params.checksums, t.links.length);
    // Frames from the destination arrive while we send: an Abort must stop us.
    this.#control = new ControlReader(t.links[0]!, t.signal);
    this.#control.watch();
    const check = () => this.#check();
    this.#channels = new ChannelScheduler(t.links, this.#tally, check, (err) => this.#control.fail(err));
    const { memory } = t.vm;
    const channels = this.#channels;
    this.#frames = new PageFrames({ memory, params: t.params, channels, tally: this.#tally, faults: t.faults, check });
    const { vm, observe, faults } = t;
    this.#passes = new PassSender({ vm, frames: this.#frames, channels, tally: this.#tally, observe, faults });
  }

  async run(): Promise<TransferResult> {
    try {
      await this.#setup();
      const { projectedMs } = await this.#brownout();
      const cancel = this.#overThreshold(projectedMs);
      if (cancel !== undefined) {
        await sendAbort(this.#t.links[0]!, AbortReason.Cancelled, cancel);
        return this.#fail(PhaseState.CANCELLED, cancel);
      }
      const stoppedAtMs = await this.#blackout();
      return await this.#verify(stoppedAtMs);
    } catch (thrown) {
      return await this.#failure(thrown);
    } finally {
      this.#digests?.close();
      this.#frames.close();
      this.#t.vm.workload.hold(false);
      this.#channels.destroy();
    }
  }

  #check(): void {
    this.#control.check();
    this.#frames.checkJobs();
  }

  /** Setup: agree on the memory layout. */
  async #setup(): Promise<void> {
    const { vm, params, report, observe, digestAhead } = this.#t;
    const { pageSize, pageCount } = vm.memory;
    const compression = params.compressionWorkers !== undefined;
    await this.#channels.sendControl(encodeSetup({ pageSize, pageCount, checksums: params.checksums, compression }));
    await this.#control.expect(MessageType.Ready, () => this.#check());
    observe({ type: "connected", side: "source" });
    report.phase(Phase.SETUP_DONE);
    report.phase(Phase.TRANSFER_IN_PROGRESS);
    this.#digests = BlockDigests.start(vm.memory, digestAhead);
    this.#digests.touch(0, pageCount);
  }

  /** Brownout: passes while the guest runs, throttled as the options say, until the rest fits the blackout. */
  async #brownout(): Promise<Brownout> {
    const { vm, params } = this.#t;
    const stats = this.#tally.stats;
    vm.memory.markAllDirty();
    vm.workload.hold(true);
    let throttle = 100;
    let previousRemaining = Number.POSITIVE_INFINITY;
    let projected = 0;
    for (let pass = 1; ; pass++) {
      if (!params.skipThrottling && pass >= params.throttleFromPass && pass > 1) {
        throttle = Math.max(params.minimumThrottlePercent, Math.round(throttle * params.throttlingScale));
        vm.workload.throttle(throttle);
      }
      const { remaining, projectedMs } = await this.#brownoutPass(pass);
      projected = projectedMs;
      // Half the target for the pages: the rest is for what else the blackout
      // holds (device state, acknowledgements, a busy machine's scheduling).
      if (projected <= params.targetBlackoutMs / 2 && (pass > 1 || remaining === 0)) break;
      if (pass >= params.maxPasses) break;
      if (pass >= params.targetPasses && remaining >= previousRemaining) break;
      previousRemaining = remaining;
    }
    stats.throttlePercent = throttle;
    return { projectedMs: projected };
  }

  /** One brownout pass, acknowledged: how many pages are dirty after it, and the blackout they project. */
  async #brownoutPass(pass: number): Promise<{ remaining: number; projectedMs: number }> {
    const { vm, observe } = this.#t;
    const memory = vm.memory;
    vm.workload.advance();
    const pages = memory.takeDirty();
    const t0 = performance.now();
    await this.#passes.send(pass, false, pages);
    await this.#channels.flushed();
    // The destination applied every channel's pages: the next pass cannot overtake this one.
    const ack = await this.#control.expect(MessageType.PassAck, () => this.#check());
    if (decodePassAck(ack.payload) !== pass) throw new WireError("memory stream: PassAck for another pass");
    const ms = performance.now() - t0;
    this.#tally.stats.brownoutPasses = pass;
    vm.workload.advance();
    this.#digests!.touchStale();
    const remaining = memory.dirtyCount;
    // The blackout sends scattered pages, far slower than pass 1's whole
    // image: project from the last pass's rate, and from pass 1 never end.
    const bytesPerMs = (pages.length * memory.pageSize) / Math.max(ms, 0.001);
    const projectedMs = (remaining * memory.pageSize) / bytesPerMs;
    this.#tally.stats.projectedBlackoutMs = projectedMs;
    const event = { pass, pages: pages.length, ms, remainingDirty: remaining, projectedBlackoutMs: projectedMs };
    observe({ type: "pass-end", side: "source", ...event });
    return { remaining, projectedMs };
  }

  /** Why the migration is cancelled: the projected blackout is over the threshold the options set. */
  #overThreshold(projectedMs: number): string | undefined {
    const { params } = this.#t;
    if (!params.cancelIfThresholdExceeded || params.blackoutThresholdMs === undefined) return undefined;
    if (projectedMs <= params.blackoutThresholdMs) return undefined;
    return (
      `projected blackout ${projectedMs.toFixed(1)} ms exceeds ` +
      `blackout_time_threshold_for_cancelling_migration ${params.blackoutThresholdMs} ms`
    );
  }

  /** Blackout: the guest paused, the last dirty pages and the device state; when it ended (ms since the epoch). */
  async #blackout(): Promise<number> {
    const { vm, report } = this.#t;
    const stats = this.#tally.stats;
    vm.pause();
    this.#digests!.pause(true);
    const blackoutStart = performance.now();
    report.phase(Phase.BLACKOUT_STARTED);
    await this.#passes.send(stats.brownoutPasses + 1, true, vm.memory.takeDirty());
    // The blackout pass is not acknowledged: OfflineAck follows once it is applied (one round trip less).
    await this.#channels.sendControl(encodeDeviceState(vm.deviceState()));
    await this.#channels.sendControl(encodeEmpty(MessageType.BlackoutEnd));
    await this.#control.expect(MessageType.OfflineAck, () => this.#check());
    report.phase(Phase.OFFLINE_DONE);
    // One reading: the blackout's end, the transfer's end and the stop time are the same instant.
    const offlineAt = performance.now();
    stats.blackoutMs = offlineAt - blackoutStart;
    stats.transferMs = offlineAt - this.#tally.startedAt;
    const stoppedAtMs = performance.timeOrigin + offlineAt;
    report.blackoutExited({ durationMs: stats.blackoutMs, stoppedAtMs });
    return stoppedAtMs;
  }

  /** Verification: the destination's image must equal ours (the guest stays paused). */
  async #verify(stoppedAtMs: number): Promise<TransferResult> {
    const stats = this.#tally.stats;
    stats.digest = await this.#digests!.digest();
    await this.#channels.sendControl(encodeVerify({ digest: stats.digest, blackoutMs: stats.blackoutMs, stoppedAtMs }));
    const result = decodeResult((await this.#control.expect(MessageType.Result, () => this.#check())).payload);
    if (!result.ok || result.digest !== stats.digest) {
      const why =
        result.message || `destination image digest ${result.digest} differs from the source's ${stats.digest}`;
      return this.#fail(PhaseState.DESTINATION_FAILED, `verification failed: ${why}`);
    }
    this.#t.observe({ type: "done", side: "source", stats: this.#tally.snapshot() });
    return { ok: true };
  }

  /** What a thrown failure means, and the Abort the destination is owed for it. */
  async #failure(thrown: unknown): Promise<TransferResult> {
    const link = this.#t.links[0]!;
    let err = thrown;
    if (this.#t.signal.aborted) {
      await sendAbort(link, AbortReason.Cancelled, "migration cancelled on the source");
      return this.#fail(PhaseState.CANCELLED, "cancelled", err);
    }
    // A peer's Abort may arrive just behind the write error it caused: prefer its reason.
    await yieldToLoop();
    if (this.#control.error instanceof PeerAbort) err = this.#control.error;
    if (err instanceof PeerAbort) {
      const state = err.reason === AbortReason.Cancelled ? PhaseState.CANCELLED : PhaseState.DESTINATION_FAILED;
      return this.#fail(state, `destination aborted the transfer: ${err.message}`, err);
    }
    const message = err instanceof Error ? err.message : String(err);
    await sendAbort(link, AbortReason.Error, message);
    return this.#fail(PhaseState.SOURCE_FAILED, message, err);
  }

  #fail(state: PhaseState, message: string, cause?: unknown): TransferResult {
    this.#t.observe({ type: "failed", side: "source", message, stats: this.#tally.snapshot() });
    return { ok: false, state, message, ...(cause === undefined ? {} : { cause }) };
  }
}
