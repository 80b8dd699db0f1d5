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

// The rules of `timeout_nano` (protocol.md §9), both ways, live here alone.

/** A relative timeout in milliseconds as `timeout_nano`: at least 1, at most int64's maximum. */
export function timeoutNano(ms: number): number {
  return Math.min(MAX_TIMEOUT_NANO, Math.max(1, Math.round(ms * 1e6)));
}

/** The `timeout_nano` a Request carries for a call's `timeoutMs`: 0 (none) without one, or for Infinity. */
export function requestTimeoutNano(timeoutMs: number | undefined): number {
  return timeoutMs === undefined || timeoutMs === Infinity ? 0 : timeoutNano(timeoutMs);
}

/**
 * A received `timeout_nano` varint of `bytes` bytes, the last one `last`: a
 * negative int64 is sign-extended to ten bytes, the last one 1 (a Go client
 * past its deadline sends one), and reads as -1, already expired.
 */
export function receivedTimeoutNano(value: number, bytes: number, last: number): number {
  return bytes === 10 && last === 1 ? -1 : value;
}

/** How long from now a received `timeout_nano` (not 0) lets a call run, ms; 0 or less: expired already. */
export function timeoutNanoMs(timeoutNano: number): number {
  return timeoutNano / 1e6;
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
  const deadline = new CallDeadline(user, timeoutMs);
  return { signal: deadline.signal, cleanup: () => deadline.cleanup() };
}

/**
 * The deadline and cancellation of one client call, as one signal. The
 * deadline can be armed again ({@link arm}) when the call's Request goes out
 * with another `timeoutMs` than it started with (an interceptor changed it),
 * so the local timer and the wire's `timeout_nano` always say the same.
 */
export class CallDeadline {
  readonly #controller = new AbortController();
  readonly #unwatch: () => void = noop;
  #timer: LongTimer | undefined;
  #timeoutMs: number | undefined;

  constructor(user: AbortSignal | undefined, timeoutMs: number | undefined) {
    if (user !== undefined) {
      const onUserAbort = () =>
        this.#controller.abort(new TtrpcError("ttrpc: call cancelled", Code.Canceled, { cause: user.reason }));
      if (user.aborted) onUserAbort();
      else this.#unwatch = watchAbort(user, onUserAbort);
    }
    this.#start(timeoutMs);
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** The deadline is `timeoutMs` from now (none when undefined), unless it is that already. */
  arm(timeoutMs: number | undefined): void {
    if (timeoutMs === this.#timeoutMs) return;
    this.#timer?.clear();
    this.#timer = undefined;
    this.#start(timeoutMs);
  }

  /** Drops the timer and the listener on the caller's signal. */
  cleanup(): void {
    this.#timer?.clear();
    this.#unwatch();
  }

  #start(timeoutMs: number | undefined): void {
    this.#timeoutMs = timeoutMs;
    if (timeoutMs === undefined || this.#controller.signal.aborted) return;
    if (timeoutMs <= 0) this.#controller.abort(deadlineError());
    else this.#timer = new LongTimer(() => this.#controller.abort(deadlineError()), timeoutMs);
  }
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
