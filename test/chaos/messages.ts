// What the chaos processes tell each other over their IPC channels, and the
// leftover check each of them runs on itself at the end.

/** Call shapes and faults, as counted in the report. */
export type Shape = "unary" | "serverStream" | "clientStream" | "bidi";
export type Fault =
  | "abort"
  | "deadline"
  | "oversizeRequest"
  | "oversizeReply"
  | "failCode"
  | "socketDestroy"
  | "halfClose"
  | "sigkill";

export type ClientMessage =
  | {
      type: "stats";
      calls: Record<string, number>;
      codes: Record<string, number>;
      faults: Record<string, number>;
      /** Calls settled more than --slack-ms past their deadline or abort, since the last stats. */
      lateCalls: number;
      /** The latest settle past a deadline or abort so far, ms. */
      maxOverrunMs: number;
    }
  | { type: "violation"; message: string; events: string[] }
  | { type: "stopped"; leftover: string[]; maxOverrunMs: number; events: string[] };

export type ServerRequest = { type: "heap" } | { type: "settle" } | { type: "stop" };
export type ServerMessage =
  | { type: "ready"; address: string }
  | { type: "heap"; heapUsed: number; rss: number }
  | { type: "settled"; activeHandlers: number; leftover: string[] };

/** Opens stdout and stderr, which Node does on their first use: a baseline taken after this does not count them. */
export function stdio(): void {
  void process.stdout;
  void process.stderr;
}

/** The kinds of active resources (sockets, timers, requests) now, by kind. */
export function activeResources(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const kind of process.getActiveResourcesInfo()) counts.set(kind, (counts.get(kind) ?? 0) + 1);
  return counts;
}

/** "Kind: base -> now" for every kind above its count in `base`. */
export function leftover(base: Map<string, number>): string[] {
  const out: string[] = [];
  for (const [kind, n] of activeResources()) {
    const b = base.get(kind) ?? 0;
    if (n > b) out.push(`${kind}: ${b} -> ${n}`);
  }
  return out.sort();
}

/** Polls the event loop (no timer of its own) until nothing is left over or `withinMs` passed; returns what is left. */
export async function settle(base: Map<string, number>, withinMs: number, done = () => true): Promise<string[]> {
  const start = performance.now();
  for (;;) {
    const left = leftover(base);
    if ((left.length === 0 && done()) || performance.now() - start > withinMs) return left;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** Adds `n` to counter `key`. */
export function count(counter: Record<string, number>, key: string, n = 1): void {
  counter[key] = (counter[key] ?? 0) + n;
}
