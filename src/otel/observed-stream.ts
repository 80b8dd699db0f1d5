import { type Context, context } from "@opentelemetry/api";

/** What {@link observeStream} reports. */
export interface StreamHooks {
  /** Each message that passes. */
  onMessage(): void;
  /** Once: the stream ended, failed (with its error) or was given up by its reader. */
  onEnd(error?: unknown): void;
  /** When set, the source is pulled inside this context (a handler's generator sees its span). */
  context?: Context;
  /** When the reader gives up and this signal has fired, the stream ended for its reason. */
  signal?: AbortSignal;
}

/**
 * The source, reporting each message and the end. A span covers a stream
 * until its last message, error or early return, not just until the call
 * returned the iterable.
 */
export function observeStream<T>(source: AsyncIterable<T>, hooks: StreamHooks): AsyncIterable<T> {
  const ctx = hooks.context;
  const inContext = <R>(fn: () => R): R => (ctx === undefined ? fn() : context.with(ctx, fn));
  return {
    [Symbol.asyncIterator](): AsyncIterator<T> {
      const it = source[Symbol.asyncIterator]();
      let ended = false;
      const end = (error?: unknown) => {
        if (ended) return;
        ended = true;
        hooks.onEnd(error);
      };
      return {
        async next() {
          try {
            const r = await inContext(() => it.next());
            if (r.done) end();
            else hooks.onMessage();
            return r;
          } catch (e) {
            end(e);
            throw e;
          }
        },
        async return(value?: unknown) {
          end(hooks.signal?.aborted ? hooks.signal.reason : undefined);
          const r = await inContext(() => it.return?.(value));
          return r ?? { done: true, value: undefined };
        },
      };
    },
  };
}
