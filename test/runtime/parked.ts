import type { HandlerContext } from "ttrpc-es";

/**
 * A handler that waits until its call ends (rejecting with its signal's
 * reason), for any method shape; `running` resolves with its context once
 * it was called.
 */
export function parked(): {
  handler: (_input: unknown, ctx: HandlerContext) => Promise<never>;
  running: Promise<HandlerContext>;
} {
  let started!: (ctx: HandlerContext) => void;
  const running = new Promise<HandlerContext>((r) => (started = r));
  const handler = (_input: unknown, ctx: HandlerContext) =>
    new Promise<never>((_resolve, reject) => {
      started(ctx);
      if (ctx.signal.aborted) reject(ctx.signal.reason);
      ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason), { once: true });
    });
  return { handler, running };
}
