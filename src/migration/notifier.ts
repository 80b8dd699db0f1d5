import { create } from "@bufbuild/protobuf";
import { timestampFromMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import {
  NotificationSchema,
  Phase,
  PhaseState,
  type Notification,
} from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_options_pb.js";
import {
  NotificationsResponseSchema,
  type NotificationsResponse,
} from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_pb.js";

/** How many notifications a subscriber may have queued before it starts losing them, as the real shim. */
export const NOTIFICATION_BUFFER_SIZE = 64;

/** Options of {@link createNotifier}. */
export interface NotifierOptions {
  /** Per-subscriber queue depth. Default {@link NOTIFICATION_BUFFER_SIZE}. */
  bufferSize?: number;
  /** The clock, in milliseconds since the Unix epoch (fractions allowed). Default: the high-resolution wall clock. */
  now?: () => number;
}

/**
 * The Notifications fan-out of one migration session: every published
 * notification gets the next `message_id` of a counter shared by all
 * subscribers (from 1), `start_time` = when the notifier was made and
 * `update_time` = when it was published. A new subscriber first receives the
 * latest notification. A subscriber whose queue is full loses notifications;
 * it never slows the publisher or the other subscribers.
 */
export interface Notifier {
  /** Stamps and delivers a notification; ignored once closed. Returns the response sent, or undefined when closed. */
  publish(notification: Notification): NotificationsResponse | undefined;
  /**
   * A subscriber's stream: the latest notification (if any), then each later
   * one, until {@link close} (the stream ends cleanly after delivering what it
   * had queued) or until `signal` aborts (it ends at once). Throws if the
   * notifier is already closed.
   */
  subscribe(signal?: AbortSignal): AsyncIterable<NotificationsResponse>;
  /** Ends every subscriber's stream. Idempotent. */
  close(): void;
  readonly closed: boolean;
  /** Open subscriptions. */
  readonly subscriberCount: number;
  /** The latest response, replayed to new subscribers. */
  readonly latest: NotificationsResponse | undefined;
  /** Notifications dropped so far because a subscriber's queue was full, summed over subscribers. */
  readonly dropped: number;
}

/** The phases that report progress; without a result they count as SUCCESS. */
const PROGRESS_PHASES: ReadonlySet<Phase> = new Set([
  Phase.SETUP_DONE,
  Phase.TRANSFER_IN_PROGRESS,
  Phase.BLACKOUT_STARTED,
  Phase.OFFLINE_DONE,
  Phase.BLACKOUT_EXITED,
]);

/**
 * A notification's PhaseState, as hcsshim's `ToPhaseState`: the result HCS
 * gave wins; without one, a progress phase is SUCCESS and a terminal phase
 * (DONE, RECOVERY_DONE, FAILED) PHASE_STATE_UNSPECIFIED, so a client can
 * tell "HCS did not say" from success.
 */
export function toPhaseState(result: PhaseState | undefined, phase: Phase): PhaseState {
  if (result !== undefined && result !== PhaseState.UNSPECIFIED) return result;
  return PROGRESS_PHASES.has(phase) ? PhaseState.SUCCESS : PhaseState.UNSPECIFIED;
}

/** The high-resolution wall clock, in milliseconds since the Unix epoch. */
export function wallClockMs(): number {
  return performance.timeOrigin + performance.now();
}

/** A `google.protobuf.Timestamp` from epoch milliseconds, keeping fractions as nanos. */
export function timestampOfMs(ms: number): Timestamp {
  const seconds = Math.floor(ms / 1000);
  const nanos = Math.min(999_999_999, Math.round((ms - seconds * 1000) * 1e6));
  const t = timestampFromMs(seconds * 1000);
  t.nanos = nanos;
  return t;
}

interface Subscriber {
  queue: NotificationsResponse[];
  wake: (() => void) | undefined;
}

/** Creates the notifier of a session; see {@link Notifier}. */
export function createNotifier(options: NotifierOptions = {}): Notifier {
  const bufferSize = options.bufferSize ?? NOTIFICATION_BUFFER_SIZE;
  const now = options.now ?? wallClockMs;
  const startTime = timestampOfMs(now());
  const subscribers = new Set<Subscriber>();
  let messageId = 0;
  let latest: NotificationsResponse | undefined;
  let closed = false;
  let dropped = 0;

  const wake = (s: Subscriber) => {
    const w = s.wake;
    s.wake = undefined;
    w?.();
  };

  async function* stream(
    s: Subscriber,
    signal: AbortSignal | undefined,
    onAbort: () => void,
  ): AsyncGenerator<NotificationsResponse> {
    try {
      for (;;) {
        if (signal?.aborted) return;
        const next = s.queue.shift();
        if (next !== undefined) {
          yield next;
          continue;
        }
        if (closed) return;
        await new Promise<void>((resolve) => (s.wake = resolve));
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
      subscribers.delete(s);
    }
  }

  return {
    publish(notification) {
      if (closed) return undefined;
      messageId++;
      const response = create(NotificationsResponseSchema, {
        messageId,
        notification: create(NotificationSchema, notification),
        startTime,
        updateTime: timestampOfMs(now()),
      });
      latest = response;
      for (const s of subscribers) {
        if (s.queue.length >= bufferSize) {
          dropped++;
          continue;
        }
        s.queue.push(response);
        wake(s);
      }
      return response;
    },
    subscribe(signal) {
      if (closed) throw new Error("the notifier is closed");
      const s: Subscriber = { queue: latest === undefined ? [] : [latest], wake: undefined };
      // Registered now, not when iteration starts, so nothing published
      // between subscribe and the first read is missed.
      subscribers.add(s);
      // A subscriber whose client left stops counting even if it never read.
      const onAbort = () => {
        subscribers.delete(s);
        wake(s);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      return stream(s, signal, onAbort);
    },
    close() {
      if (closed) return;
      closed = true;
      for (const s of subscribers) wake(s);
    },
    get closed() {
      return closed;
    },
    get subscriberCount() {
      return subscribers.size;
    },
    get latest() {
      return latest;
    },
    get dropped() {
      return dropped;
    },
  };
}
