/**
 * The destination side of the pre-copy live migration: it applies the
 * pages of every pass to its (not running) VM's memory, verifies each
 * page's checksum when asked, loads the device state, and at the end checks
 * that its whole image equals the source's.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { Phase, PhaseState } from "../../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_options_pb.js";
import type { TransferReporter, TransferResult } from "../backend.js";
import { sendAbort } from "./pre-copy-source.js";
import type { DeviceState, SimulatedVm } from "./simulated-vm.js";
import { emptyStats, type TransferObserver, type TransferStats } from "./transfer-events.js";
import type { Link } from "./transfer-link.js";
import { AbortReason, encodeFrame, MessageType, WireError } from "./wire-protocol.js";

export interface DestinationTransfer {
  readonly vm: SimulatedVm;
  readonly link: Link;
  readonly report: TransferReporter;
  readonly signal: AbortSignal;
  readonly observe: TransferObserver;
}

class Mismatch extends Error {}

export async function runDestination(t: DestinationTransfer): Promise<TransferResult> {
  const { vm, link, report, signal, observe } = t;
  const memory = vm.memory;
  const started = performance.now();
  const stats = emptyStats("destination", false);
  const snapshot = (): TransferStats => ({ ...stats, durationMs: performance.now() - started });
  const onAbort = () => link.socket.destroy();
  signal.addEventListener("abort", onAbort, { once: true });
  const next = async () => {
    const frame = await link.reader.next();
    stats.wireBytes += 6 + frame.payload.length;
    if (frame.type === MessageType.Abort) {
      const reason = frame.payload[0] as AbortReason;
      const message = frame.payload.subarray(1).toString("utf8");
      throw Object.assign(new WireError(`source aborted the transfer: ${message}`), { abortReason: reason });
    }
    return frame;
  };
  try {
    const setup = await next();
    if (setup.type !== MessageType.Setup)
      throw new WireError(`memory stream: expected Setup, got ${MessageType[setup.type]}`);
    const pageSize = setup.payload.readUInt32BE(0);
    const pageCount = setup.payload.readUInt32BE(4);
    stats.checksums = (setup.payload[8]! & 1) === 1;
    if (pageSize !== memory.pageSize || pageCount !== memory.pageCount) {
      throw new Mismatch(
        `memory layout mismatch: source has ${pageCount} pages of ${pageSize} bytes, ` +
          `destination ${memory.pageCount} of ${memory.pageSize}`,
      );
    }
    link.socket.write(encodeFrame(MessageType.Ready));
    observe({ type: "connected", side: "destination" });
    report.phase(Phase.SETUP_DONE);
    let pass = 0;
    let blackout = false;
    let passPages = 0;
    let passDone = 0;
    let device: DeviceState | undefined;
    for (;;) {
      const frame = await next();
      const p = frame.payload;
      switch (frame.type) {
        case MessageType.PassBegin: {
          pass = p.readUInt32BE(0);
          passPages = p.readUInt32BE(4);
          passDone = 0;
          blackout = p[8] === 1;
          if (pass === 1) report.phase(Phase.TRANSFER_IN_PROGRESS);
          if (blackout) report.phase(Phase.BLACKOUT_STARTED);
          else stats.brownoutPasses = pass;
          observe({ type: "pass", side: "destination", pass, blackout, pages: passPages, throttlePercent: 100 });
          break;
        }
        case MessageType.Pages: {
          const count = p.readUInt32BE(0);
          const sum = stats.checksums ? 20 : 0;
          if (p.length !== 4 + count * (4 + sum + pageSize))
            throw new WireError(`memory stream: Pages frame of ${p.length} bytes does not hold ${count} pages`);
          const dataAt = 4 + count * (4 + sum);
          for (let k = 0; k < count; k++) {
            const index = p.readUInt32BE(4 + k * 4);
            if (index >= pageCount) throw new WireError(`memory stream: page ${index} out of range`);
            const data = p.subarray(dataAt + k * pageSize, dataAt + (k + 1) * pageSize);
            if (sum > 0) {
              const expected = p.subarray(4 + count * 4 + k * sum, 4 + count * 4 + (k + 1) * sum);
              if (!createHash("sha1").update(data).digest().equals(expected)) {
                throw new Mismatch(`checksum mismatch on page ${index} in pass ${pass}`);
              }
            }
            memory.writePage(index, data);
          }
          stats.pages += count;
          stats.pageBytes += count * pageSize;
          if (blackout) stats.blackoutPages += count;
          passDone += count;
          observe({
            type: "progress",
            side: "destination",
            pass,
            blackout,
            passDone,
            passPages,
            pageBytes: stats.pageBytes,
            imageBytes: memory.sizeBytes,
          });
          break;
        }
        case MessageType.PassEnd:
          break;
        case MessageType.DeviceState: {
          device = JSON.parse(p.toString("utf8")) as DeviceState;
          try {
            vm.loadDeviceState(device);
          } catch (err) {
            throw new Mismatch(`device state rejected: ${(err as Error).message}`);
          }
          break;
        }
        case MessageType.BlackoutEnd: {
          if (device === undefined) throw new Mismatch("blackout ended without device state");
          link.socket.write(encodeFrame(MessageType.OfflineAck));
          report.phase(Phase.OFFLINE_DONE);
          break;
        }
        case MessageType.Verify: {
          stats.blackoutMs = p.readDoubleBE(32);
          report.blackoutExited({ durationMs: stats.blackoutMs, stoppedAtMs: p.readDoubleBE(40) });
          const theirs = p.subarray(0, 32).toString("hex");
          stats.digest = memory.digest();
          const ok = theirs === stats.digest;
          const message = ok ? "" : `image digest mismatch: destination ${stats.digest}, source ${theirs}`;
          const result = Buffer.concat([
            Buffer.from([ok ? 1 : 0]),
            Buffer.from(stats.digest, "hex"),
            Buffer.from(message, "utf8"),
          ]);
          await new Promise<void>((resolve) =>
            link.socket.end(encodeFrame(MessageType.Result, result), () => resolve()),
          );
          if (!ok) throw new Mismatch(message);
          observe({ type: "done", side: "destination", stats: snapshot() });
          return { ok: true };
        }
        default:
          throw new WireError(`memory stream: unexpected ${MessageType[frame.type]} on the destination`);
      }
    }
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (signal.aborted) return fail(PhaseState.CANCELLED, "cancelled", err);
    if ((err as { abortReason?: AbortReason }).abortReason === AbortReason.Cancelled)
      return fail(PhaseState.CANCELLED, message, err);
    if (err instanceof Mismatch) await sendAbort(link, AbortReason.ChecksumMismatch, message);
    else await sendAbort(link, AbortReason.Error, message);
    return fail(PhaseState.DESTINATION_FAILED, message, err);
  } finally {
    signal.removeEventListener("abort", onAbort);
    link.socket.destroy();
  }

  function fail(state: PhaseState, message: string, cause?: unknown): TransferResult {
    observe({ type: "failed", side: "destination", message, stats: snapshot() });
    return { ok: false, state, message, ...(cause === undefined ? {} : { cause }) };
  }
}
