// One migration session of the reference server: its state, its socket, its
// transfer and its notifications. A new object per session, so a stale
// background transfer can tell it no longer owns the server.
import type { NotificationsResponse } from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_pb.js";
import {
  Origin,
  Phase,
  PhaseState,
  type Notification,
} from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_options_pb.js";
import type { BackendSession, BlackoutReport } from "./backend.js";
import { createNotifier, timestampOfMs, toPhaseState, type Notifier, type NotifierOptions } from "./notifier.js";
import { sessionNumber } from "./session-number.js";
import type { MigrationState } from "./session-state.js";
import type { HcsMigrationOptions, HcsMigrationOrigin, StatedState } from "./stated-state.js";

/** A promise with its resolver, for the socket the transfer waits on. */
class Signal {
  resolve!: () => void;
  readonly promise = new Promise<void>((r) => (this.resolve = r));
}

export class MigrationSession<E> implements BackendSession {
  readonly sessionNumber: number;
  options: HcsMigrationOptions;
  stated: StatedState | undefined;
  /** Set while CreateDuplicateSocket runs and after it succeeded. */
  socketClaimed = false;
  endpoint: { value: E } | undefined;
  /** Settles when CreateDuplicateSocket succeeded or failed, or Cancel came. */
  readonly socketSettled = new Signal();
  /** Aborted by Cancel and Cleanup: stops the socket wait and the transfer. */
  readonly abort = new AbortController();
  transfer: Promise<void> | undefined;
  blackoutStartedAt: number | undefined;
  /** Imported containers that Task Create has not re-created yet (when tracked). */
  /** By source container id: its pod's id. */
  readonly pending = new Map<string, string>();
  /** A RESUME finalized the VM but did not finish (its resume failed). */
  vmResumed = false;
  /** Made by the first Notifications call, as hcsshim makes its notifier. */
  private notifier: Notifier | undefined;
  /** What the backend reported before anyone subscribed (HCS queues these for the shim). */
  private backlog: Notification[] = [];
  private ended = false;

  constructor(
    readonly sessionId: string,
    readonly origin: HcsMigrationOrigin,
    public state: MigrationState,
    private readonly notifierOptions: NotifierOptions,
  ) {
    this.sessionNumber = sessionNumber(sessionId);
    this.options = { Origin: origin };
  }

  ident(): BackendSession {
    return { sessionId: this.sessionId, sessionNumber: this.sessionNumber, origin: this.origin };
  }

  get subscribers(): number {
    return this.notifier?.subscriberCount ?? 0;
  }

  /** The side's own failure state: SOURCE_FAILED or DESTINATION_FAILED. */
  get sideFailed(): PhaseState {
    return this.origin === "Source" ? PhaseState.SOURCE_FAILED : PhaseState.DESTINATION_FAILED;
  }

  /**
   * A Notifications stream. The first call makes the notifier (its time is
   * every response's `start_time`) and sends it what the backend reported
   * so far; a subscriber then receives the latest notification first.
   */
  subscribe(signal: AbortSignal): AsyncIterable<NotificationsResponse> | undefined {
    if (this.ended) return undefined;
    if (this.notifier === undefined) {
      this.notifier = createNotifier(this.notifierOptions);
      for (const n of this.backlog.splice(0)) this.notifier.publish(n);
    }
    return this.notifier.subscribe(signal);
  }

  /**
   * A notification the VM side (HCS; here the backend) reports: queued until
   * the first subscriber if there is none yet. `result` is the PhaseState it
   * gave, if any ({@link toPhaseState}).
   */
  report(phase: Phase, result?: PhaseState, blackout?: BlackoutReport): void {
    if (this.ended) return;
    const n = this.notification(phase, toPhaseState(result, phase), blackout);
    if (this.notifier === undefined) this.backlog.push(n);
    else this.notifier.publish(n);
  }

  /**
   * The shim's own failure (socket wait timed out, the transfer could not
   * start): PHASE_FAILED with the side's state, to existing subscribers
   * only, as hcsshim's `failTransfer` (nothing when nobody ever subscribed).
   */
  announceFailure(): void {
    this.notifier?.publish(this.notification(Phase.FAILED, this.sideFailed));
  }

  /** Ends every Notifications stream; later subscribes find the session gone. */
  end(): void {
    this.ended = true;
    this.backlog = [];
    this.notifier?.close();
  }

  private notification(phase: Phase, state: PhaseState, blackout?: BlackoutReport): Notification {
    const n: Partial<Notification> = {
      origin: this.origin === "Source" ? Origin.SOURCE : Origin.DESTINATION,
      phase,
      state,
    };
    if (blackout !== undefined) {
      n.phaseDetails = {
        case: "blackoutExited",
        value: {
          blackoutDurationMilliseconds: BigInt(Math.max(0, Math.round(blackout.durationMs))),
          blackoutStopTimestamp: timestampOfMs(blackout.stoppedAtMs),
        } as never,
      };
    }
    return n as Notification;
  }
}
