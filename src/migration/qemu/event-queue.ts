// QMP events of one QEMU, queued from the moment a transfer subscribes, so a
// transfer handles them in order and none slips by between two awaits.
import type { QmpClient, QmpEvent } from "./qmp-client.js";

/** What {@link EventQueue.next} yields besides events. */
export type QueueItem =
  | { readonly kind: "event"; readonly event: QmpEvent }
  | { readonly kind: "closed" }
  | { readonly kind: "aborted" };

export class EventQueue {
  readonly #items: QueueItem[] = [];
  #wake: (() => void) | undefined;
  readonly #stop: () => void;
  readonly #signal: AbortSignal;
  readonly #onAbort = () => this.#push({ kind: "aborted" });

  /** Subscribes to `names` on `qmp`; `signal` aborting queues one "aborted" item. */
  constructor(qmp: QmpClient, names: readonly string[], signal: AbortSignal) {
    const wanted = new Set(names);
    this.#stop = qmp.onEvent((event) => {
      if (wanted.has(event.event)) this.#push({ kind: "event", event });
    });
    void qmp.closed.then(() => this.#push({ kind: "closed" }));
    if (qmp.isClosed) this.#push({ kind: "closed" });
    this.#signal = signal;
    if (signal.aborted) this.#push({ kind: "aborted" });
    else signal.addEventListener("abort", this.#onAbort, { once: true });
  }

  #push(item: QueueItem): void {
    this.#items.push(item);
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** The next item, waiting for one. */
  async next(): Promise<QueueItem> {
    while (this.#items.length === 0) await new Promise<void>((resolve) => (this.#wake = resolve));
    return this.#items.shift()!;
  }

  /** Stops listening. */
  close(): void {
    this.#stop();
    this.#signal.removeEventListener("abort", this.#onAbort);
  }
}
