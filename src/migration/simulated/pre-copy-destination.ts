/**
 * The destination side of the pre-copy live migration: it applies the
 * pages of every pass to its (not running) VM's memory, verifies each
 * page's checksum when asked, loads the device state, and at the end checks
 * that its whole image equals the source's.
 *
 * Pages may come on several channels; within a pass each page comes once,
 * so their order does not matter. A pass is acknowledged (PassAck) once
 * every channel has ended it, and the source starts the next pass only then,
 * so a page of pass n+1 never lands before the same page of pass n.
 *
 * @module
 */
import { Phase, PhaseState } from "../../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_options_pb.js";
import type { TransferReporter, TransferResult } from "../backend.js";
import { BlockDigests } from "./block-digests.js";
import { ControlReader, PeerAbort } from "./control-reader.js";
import { Mismatch, PageApplier } from "./page-applier.js";
import type { DeviceState, SimulatedVm } from "./simulated-vm.js";
import type { TransferObserver } from "./transfer-events.js";
import { type Link, sendAbort } from "./transfer-link.js";
import { TransferTally } from "./transfer-tally.js";
import {
  AbortReason,
  decodeDeviceState,
  decodePassBegin,
  decodePassEnd,
  decodeSetup,
  decodeVerify,
  encodeEmpty,
  encodePassAck,
  encodeResult,
  type Frame,
  FRAME_HEADER,
  MessageType,
  WireError,
} from "./wire-protocol.js";

export interface DestinationTransfer {
  readonly vm: SimulatedVm;
  /** The connections, one per channel; the first also carries the control messages. */
  readonly links: readonly Link[];
  readonly report: TransferReporter;
  readonly signal: AbortSignal;
  readonly observe: TransferObserver;
  /** Decompression workers, when the source compresses. Default one per core. */
  readonly compressionWorkers?: number;
  /** Hash digest blocks during the passes; default {@link digestPlan}. */
  readonly digestAhead?: boolean;
}

/** Runs the destination side of a transfer to its end; a failure is a result, not a throw. */
export function runDestination(t: DestinationTransfer): Promise<TransferResult> {
  return new PreCopyDestination(t).run();
}

/** The frames any channel may carry: pages and pass ends. */
function isData(frame: Frame): boolean {
  const t = frame.type;
  return (
    t === MessageType.Pages ||
    t === MessageType.ZeroPages ||
    t === MessageType.CompressedPages ||
    t === MessageType.PassEnd
  );
}

/** Pass ends per channel: a pass is complete when every channel ended it and its pages are applied. */
class PassCompletion {
  readonly #channels: number;
  readonly #ended = new Map<number, number>();
  readonly #complete = new Map<number, { done: Promise<void>; resolve: () => void }>();

  constructor(channels: number) {
    this.#channels = channels;
  }

  /** A channel ended pass `pass`; true when it was the last to. */
  channelEnded(pass: number): boolean {
    const count = (this.#ended.get(pass) ?? 0) + 1;
    this.#ended.set(pass, count);
    if (count < this.#channels) return false;
    this.#ended.delete(pass);
    return true;
  }

  /** Pass `pass` is complete. */
  completed(pass: number): void {
    this.#entry(pass).resolve();
  }

  /** Resolves when pass `pass` is complete. */
  done(pass: number): Promise<void> {
    return this.#entry(pass).done;
  }

  #entry(pass: number): { done: Promise<void>; resolve: () => void } {
    let c = this.#complete.get(pass);
    if (c === undefined) {
      let resolve = () => {};
      const done = new Promise<void>((r) => (resolve = r));
      c = { done, resolve };
      this.#complete.set(pass, c);
    }
    return c;
  }
}

/**
 * One destination transfer: the layout agreed, every channel's pages
 * applied, passes acknowledged, the device state loaded, the image verified.
 */
class PreCopyDestination {
  readonly #t: DestinationTransfer;
  readonly #link: Link;
  readonly #tally: TransferTally;
  readonly #control: ControlReader;
  readonly #pages: PageApplier;
  readonly #passes: PassCompletion;
  #device: DeviceState | undefined;
  /** The image digest, computed once the blackout ended. */
  #digest: Promise<string> | undefined;
  readonly #onAbort = () => {
    for (const l of this.#t.links) l.socket.destroy();
  };

  constructor(t: DestinationTransfer) {
    this.#t = t;
    this.#link = t.links[0]!;
    this.#tally = new TransferTally("destination", false, t.links.length);
    this.#control = new ControlReader(this.#link, t.signal, (frame) => {
      this.#tally.stats.wireBytes += FRAME_HEADER + frame.length;
    });
    const fail = (err: unknown) => this.#control.fail(err as Error);
    const memory = t.vm.memory;
    const { observe, compressionWorkers } = t;
    this.#pages = new PageApplier({ memory, tally: this.#tally, observe, compressionWorkers, onJobFailed: fail });
    this.#passes = new PassCompletion(t.links.length);
  }

  async run(): Promise<TransferResult> {
    this.#t.signal.addEventListener("abort", this.#onAbort, { once: true });
    // A data channel's failure ends the transfer: the control channel's reads race it.
    for (const l of this.#t.links.slice(1)) {
      void (async () => {
        let last = false;
        while (!last) last = this.#data(await this.#control.read(l.reader));
      })().catch((err: Error) => this.#control.fail(err));
    }
    try {
      await this.#setup();
      for (;;) {
        const frame = await this.#control.next();
        // Pages on the control channel are applied at once, without another turn.
        if (isData(frame)) this.#data(frame);
        else {
          const result = await this.#onControl(frame);
          if (result !== undefined) return result;
        }
      }
    } catch (err) {
      return await this.#failure(err);
    } finally {
      this.#pages.digests?.close();
      this.#pages.close();
      this.#t.signal.removeEventListener("abort", this.#onAbort);
      for (const l of this.#t.links) l.socket.destroy();
    }
  }

  /** Setup: the source's layout must be ours. */
  async #setup(): Promise<void> {
    const { vm, report, observe, digestAhead } = this.#t;
    const memory = vm.memory;
    const setup = await this.#control.next();
    if (setup.type !== MessageType.Setup)
      throw new WireError(`memory stream: expected Setup, got ${MessageType[setup.type]}`);
    const s = decodeSetup(setup.payload);
    this.#tally.stats.checksums = s.checksums;
    if (s.pageSize !== memory.pageSize || s.pageCount !== memory.pageCount) {
      throw new Mismatch(
        `memory layout mismatch: source has ${s.pageCount} pages of ${s.pageSize} bytes, ` +
          `destination ${memory.pageCount} of ${memory.pageSize}`,
      );
    }
    // Readers that can put pages in memory themselves get to from now on.
    const sink = {
      pageSize: memory.pageSize,
      pageCount: memory.pageCount,
      sumBytes: (pages: number) => (s.checksums ? 4 * pages : 0),
      views: (first: number, count: number) => memory.views(first, count),
    };
    for (const l of this.#t.links) l.reader.sink = sink;
    this.#link.socket.write(encodeEmpty(MessageType.Ready));
    // Before the first page is applied; after the Ready, which the workers' start would delay.
    this.#pages.digests = BlockDigests.start(memory, digestAhead);
    observe({ type: "connected", side: "destination" });
    report.phase(Phase.SETUP_DONE);
  }

  /** A data frame (any channel); true on the channel's last PassEnd. */
  #data(frame: Frame): boolean {
    switch (frame.type) {
      case MessageType.Pages:
        this.#pages.applyPages(frame);
        return false;
      case MessageType.ZeroPages:
        this.#pages.applyZeroPages(frame);
        return false;
      case MessageType.CompressedPages:
        this.#pages.applyCompressed(frame);
        return false;
      case MessageType.PassEnd:
        return this.#passEnd(frame);
      default:
        throw new WireError(`memory stream: unexpected ${MessageType[frame.type]} on a data channel`);
    }
  }

  #passEnd(frame: Frame): boolean {
    const { pass, last } = decodePassEnd(frame.payload);
    if (!this.#passes.channelEnded(pass)) return last;
    void this.#pages.settled().then(() => {
      if (this.#link.socket.destroyed) return;
      // The blackout pass is answered by OfflineAck instead.
      if (!last) this.#link.socket.write(encodePassAck(pass));
      this.#passes.completed(pass);
    });
    return last;
  }

  /** A frame of the control channel; the result once the transfer is verified. */
  async #onControl(frame: Frame): Promise<TransferResult | undefined> {
    switch (frame.type) {
      case MessageType.PassBegin:
        this.#passBegin(frame);
        return undefined;
      case MessageType.DeviceState:
        this.#loadDevice(frame);
        return undefined;
      case MessageType.BlackoutEnd:
        await this.#blackoutEnd();
        return undefined;
      case MessageType.Verify:
        return this.#verify(frame);
      default:
        throw new WireError(`memory stream: unexpected ${MessageType[frame.type]} on the destination`);
    }
  }

  #passBegin(frame: Frame): void {
    const { report, observe } = this.#t;
    const b = decodePassBegin(frame.payload);
    this.#pages.beginPass(b.pass, b.pages, b.blackout);
    if (b.pass === 1) report.phase(Phase.TRANSFER_IN_PROGRESS);
    if (b.blackout) {
      report.phase(Phase.BLACKOUT_STARTED);
      this.#pages.digests?.pause(true);
    } else this.#tally.stats.brownoutPasses = b.pass;
    const { pass, blackout, pages } = b;
    observe({ type: "pass", side: "destination", pass, blackout, pages, throttlePercent: 100 });
  }

  #loadDevice(frame: Frame): void {
    const device = decodeDeviceState(frame.payload) as DeviceState;
    try {
      this.#t.vm.loadDeviceState(device);
    } catch (err) {
      throw new Mismatch(`device state rejected: ${(err as Error).message}`);
    }
    this.#device = device;
  }

  async #blackoutEnd(): Promise<void> {
    if (this.#device === undefined) throw new Mismatch("blackout ended without device state");
    // Every channel's pages of the blackout pass are in before we say so.
    await Promise.race([this.#passes.done(this.#pages.position.pass), this.#control.failed]);
    this.#link.socket.write(encodeEmpty(MessageType.OfflineAck));
    this.#tally.stats.transferMs = this.#tally.elapsedMs;
    this.#t.report.phase(Phase.OFFLINE_DONE);
    // The image is final: digest (what is left of) it while the source
    // digests its own, once the OfflineAck is on its way.
    const final = this.#pages.digests;
    const memory = this.#t.vm.memory;
    this.#digest = new Promise<void>((resolve) => setImmediate(resolve)).then(() => final?.digest() ?? memory.digest());
    this.#digest.catch(() => {});
  }

  async #verify(frame: Frame): Promise<TransferResult> {
    const stats = this.#tally.stats;
    const v = decodeVerify(frame.payload);
    stats.blackoutMs = v.blackoutMs;
    this.#t.report.blackoutExited({ durationMs: v.blackoutMs, stoppedAtMs: v.stoppedAtMs });
    stats.digest = await (this.#digest ?? Promise.resolve(this.#t.vm.memory.digest()));
    const ok = v.digest === stats.digest;
    const message = ok ? "" : `image digest mismatch: destination ${stats.digest}, source ${v.digest}`;
    const result = encodeResult({ ok, digest: stats.digest, message });
    await new Promise<void>((resolve) => this.#link.socket.end(result, () => resolve()));
    if (!ok) throw new Mismatch(message);
    this.#t.observe({ type: "done", side: "destination", stats: this.#tally.snapshot() });
    return { ok: true };
  }

  async #failure(err: unknown): Promise<TransferResult> {
    let message = err instanceof Error ? err.message : String(err);
    if (err instanceof PeerAbort) message = `source aborted the transfer: ${err.message}`;
    if (this.#t.signal.aborted) return this.#fail(PhaseState.CANCELLED, "cancelled", err);
    if (err instanceof PeerAbort && err.reason === AbortReason.Cancelled)
      return this.#fail(PhaseState.CANCELLED, message, err);
    const reason = err instanceof Mismatch ? AbortReason.ChecksumMismatch : AbortReason.Error;
    await sendAbort(this.#link, reason, message);
    return this.#fail(PhaseState.DESTINATION_FAILED, message, err);
  }

  #fail(state: PhaseState, message: string, cause?: unknown): TransferResult {
    this.#t.observe({ type: "failed", side: "destination", message, stats: this.#tally.snapshot() });
    return { ok: false, state, message, ...(cause === undefined ? {} : { cause }) };
  }
}
