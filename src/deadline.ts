import { Code } from "./code.js";
import { TtrpcError } from "./ttrpc-error.js";

// Node's timers hold a signed 32-bit delay: anything longer fires after 1 ms.
const MAX_TIMER_MS = 2 ** 31 - 1;

// The largest double below 2^63: timeout_nano is an int64 and 2^63 would wrap negative.
const MAX_TIMEOUT_NANO = 2 ** 63 - 1024;

/** A signal that never fires, shared by every call that has neither a signal nor a deadline. */
export const NEVER: AbortSignal = new AbortController().signal;

const noop = () => {};

/**
 * A timer of any length: past 2^31-1 ms it re-arms itself in steps, so a
 * deadline of months fires neither at once nor early. `Infinity` never fires.
 */
export class LongTimer {
  #timer: NodeJS.Timeout | undefined;
  #left: number;
  readonly #fn: () => void;

  constructor(fn: () => void, ms: number) {
    this.#fn = fn;
    this.#left = ms;
    this.#arm();
  }

  #arm(): void {
    if (this.#left === Infinity) return;
    const step = Math.min(this.#left, MAX_TIMER_MS);
    this.#left -= step;
    this.#timer = setTimeout(this.#tick, step);
  }

  #tick = (): void => {
    this.#timer = undefined;
    if (this.#left > 0) this.#arm();
    else this.#fn();
  };

  clear(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/** A relative timeout in milliseconds as `timeout_nano`: at least 1, at most int64's maximum. */
export function timeoutNano(ms: number): number {
  return Math.min(MAX_TIMEOUT_NANO, Math.max(1, Math.round(ms * 1e6)));
}

/** The error of a client call whose deadline passed. */
export function deadlineError(): TtrpcError {
  return new TtrpcError("ttrpc: deadline exceeded", Code.DeadlineExceeded);
}

/**
 * The signal of one client call: the caller's signal and the deadline in
 * one. A call with neither shares NEVER: an AbortController per call was a
 * tenth of a unary call's cost. `cleanup` drops the timer and the listener.
 */
export function callSignal(
  user: AbortSignal | undefined,
  timeoutMs: number | undefined,
): { signal: AbortSignal; cleanup: () => void } {
  if (user === undefined && timeoutMs === undefined) return { signal: NEVER, cleanup: noop };
  const controller = new AbortController();
  const onUserAbort = () =>
    controller.abort(new TtrpcError("ttrpc: call cancelled", Code.Canceled, { cause: user?.reason }));
  let unwatch = noop;
  if (user !== undefined) {
    if (user.aborted) onUserAbort();
    else unwatch = watchAbort(user, onUserAbort);
  }
  let timer: LongTimer | undefined;
  if (timeoutMs !== undefined && !controller.signal.aborted) {
    if (timeoutMs <= 0) controller.abort(deadlineError());
    else timer = new LongTimer(() => controller.abort(deadlineError()), timeoutMs);
  }
  return {
    signal: controller.signal,
    cleanup: () => {
      timer?.clear();
      unwatch();
    },
  };
}

// One listener per signal, however many calls share it: Node warns past ten
// listeners on one AbortSignal, and a single shutdown signal handed to every
// call is the common case.
const watchers = new WeakMap<AbortSignal, Set<() => void>>();

/** Runs `fn` when `signal` aborts; the returned function stops watching. */
export function watchAbort(signal: AbortSignal, fn: () => void): () => void {
  let set = watchers.get(signal);
  if (set === undefined) {
    const fns = new Set<() => void>();
    set = fns;
    watchers.set(signal, fns);
    signal.addEventListener(
      "abort",
      () => {
        watchers.delete(signal);
        for (const f of fns) f();
      },
      { once: true },
    );
  }
  const fns = set;
  fns.add(fn);
  return () => fns.delete(fn);
}
