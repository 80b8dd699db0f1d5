/**
 * The destination side of a QEMU live migration: `migrate-incoming` on a QEMU
 * started with `-incoming defer`, then its MIGRATION and RESUME events mapped
 * onto the service's phases. The destination QEMU exits by itself when an
 * incoming migration fails or the source cancels (QEMU 7.2), so its monitor
 * closing is a failure of this side, reported, not a crash of the backend.
 *
 * @module
 */
import { Phase, PhaseState } from "../../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_options_pb.js";
import type { TransferReporter, TransferResult } from "../backend.js";
import { EventQueue } from "./event-queue.js";
import type { QemuProcess } from "./qemu-vm.js";

export interface DestinationTransferOptions {
  readonly vm: QemuProcess;
  /** The URI for `migrate-incoming`. */
  readonly uri: string;
  readonly report: TransferReporter;
  readonly signal: AbortSignal;
  readonly observe: (status: string) => void;
}

/** Runs the destination side; resolves once the guest runs here, or the migration failed or was cancelled. */
export async function runDestinationTransfer(o: DestinationTransferOptions): Promise<TransferResult> {
  const { vm, report } = o;
  const queue = new EventQueue(vm.qmp, ["MIGRATION", "RESUME"], o.signal);
  let active = false;
  let completed = false;
  let resumed = false;
  try {
    await vm.qmp.execute("migrate-incoming", { uri: o.uri });
    for (;;) {
      const item = await queue.next();
      if (item.kind === "aborted") return { ok: false, state: PhaseState.CANCELLED, message: "cancelled" };
      if (item.kind === "closed") return gone(o);
      const { event, data, timestampMs } = item.event;
      if (event === "RESUME") {
        // The guest runs here: every byte arrived, and the blackout is over
        // (its length is the source's to measure). RESUME may beat "completed".
        resumed = true;
        if (!completed) report.phase(Phase.OFFLINE_DONE);
        report.blackoutExited({ stoppedAtMs: timestampMs });
        if (completed) return { ok: true };
        continue;
      }
      const status = String(data.status);
      o.observe(status);
      if (status === "active" && !active) {
        active = true;
        report.phase(Phase.SETUP_DONE);
        report.phase(Phase.TRANSFER_IN_PROGRESS);
      } else if (status === "completed") {
        completed = true;
        if (resumed) return { ok: true };
        report.phase(Phase.OFFLINE_DONE);
        if ((await vm.status()) === "running") {
          report.blackoutExited({ stoppedAtMs: Date.now() });
          return { ok: true };
        }
      } else if (status === "failed") {
        return {
          ok: false,
          state: PhaseState.DESTINATION_FAILED,
          message: `incoming migration failed: ${vm.stderrTail()}`,
        };
      }
    }
  } catch (e) {
    if (vm.qmp.isClosed) return gone(o);
    throw e;
  } finally {
    queue.close();
  }
}

/**
 * The destination QEMU exited mid-transfer. It exits by itself (status 1)
 * when the source cancels, so after a Cancel that is the cancel; killed by a
 * signal (never sent by this backend during a transfer) it died, whichever
 * side the orchestrator heard from first.
 */
async function gone(o: DestinationTransferOptions): Promise<TransferResult> {
  const exit = await o.vm.exited;
  const cancelled = o.signal.aborted && exit.signal === null;
  return {
    ok: false,
    state: cancelled ? PhaseState.CANCELLED : PhaseState.DESTINATION_FAILED,
    message: `the destination QEMU exited (status ${exit.code ?? exit.signal}): ${o.vm.stderrTail() || "no message"}`,
  };
}
