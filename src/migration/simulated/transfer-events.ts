/**
 * What a simulated transfer tells its observer (the CLI's progress bar, the
 * benchmark, tests): finer than the Notifications phases, which carry no
 * byte counts.
 *
 * @module
 */
import type { MigrationSide as Side } from "../orchestrator-types.js";

/** The figures of one side's memory transfer. */
export interface TransferStats {
  readonly side: Side;
  /** Brownout passes run (the blackout pass not included). */
  readonly brownoutPasses: number;
  /** Pages sent (source) or received (destination), all passes. */
  readonly pages: number;
  /** Page bytes moved, all passes (zero pages included: they travel as markers). */
  readonly pageBytes: number;
  /** Pages sent (or received) as zero-page markers, all passes. */
  readonly zeroPages: number;
  /** Pages sent (or received) in compressed frames, all passes. */
  readonly compressedPages: number;
  /** Connections the transfer used (its channels). */
  readonly channels: number;
  /** Bytes on the wire, framing included. */
  readonly wireBytes: number;
  /** Pages moved while the guest was paused. */
  readonly blackoutPages: number;
  /** Measured blackout (source: pause to the destination's acknowledgement), ms. */
  readonly blackoutMs: number;
  /**
   * Wall time from the connection to the end of the blackout (every page
   * applied at the destination: where a hypervisor's transfer ends), ms;
   * 0 until then.
   */
  readonly transferMs: number;
  /** Wall time from the connection to the verified end (both image digests compared), ms. */
  readonly durationMs: number;
  /** SHA-256 of the whole memory image at the end, hex ("" when not reached). */
  readonly digest: string;
  /** The guest's speed at the blackout, percent. */
  readonly throttlePercent: number;
  /** The projected blackout when the brownout ended, ms. */
  readonly projectedBlackoutMs: number;
  readonly checksums: boolean;
}

/** What a memory transfer reports as it runs: passes, blackout, end. */
export type TransferEvent =
  | { readonly type: "connected"; readonly side: Side }
  | {
      readonly type: "pass";
      readonly side: Side;
      readonly pass: number;
      readonly blackout: boolean;
      readonly pages: number;
      readonly throttlePercent: number;
    }
  | {
      readonly type: "progress";
      readonly side: Side;
      readonly pass: number;
      readonly blackout: boolean;
      /** Pages of this pass done so far. */
      readonly passDone: number;
      readonly passPages: number;
      /** Page bytes moved so far, all passes. */
      readonly pageBytes: number;
      /** The image size, for a progress bar of the first pass. */
      readonly imageBytes: number;
    }
  | {
      readonly type: "pass-end";
      readonly side: Side;
      readonly pass: number;
      readonly pages: number;
      readonly ms: number;
      readonly remainingDirty: number;
      readonly projectedBlackoutMs: number;
    }
  | { readonly type: "done"; readonly side: Side; readonly stats: TransferStats }
  | { readonly type: "failed"; readonly side: Side; readonly message: string; readonly stats: TransferStats };

/** A listener for {@link TransferEvent}s. */
export type TransferObserver = (event: TransferEvent) => void;

/** Mutable stats of a transfer in progress, all zero. */
export function emptyStats(side: Side, checksums: boolean): { -readonly [K in keyof TransferStats]: TransferStats[K] } {
  return {
    side,
    brownoutPasses: 0,
    pages: 0,
    pageBytes: 0,
    zeroPages: 0,
    compressedPages: 0,
    channels: 1,
    wireBytes: 0,
    blackoutPages: 0,
    blackoutMs: 0,
    transferMs: 0,
    durationMs: 0,
    digest: "",
    throttlePercent: 100,
    projectedBlackoutMs: 0,
    checksums,
  };
}
