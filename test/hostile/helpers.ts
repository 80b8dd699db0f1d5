// Helpers of the hostile-input and fault tests: an error trap for the whole
// process, a server whose handlers report their signals, and raw frames.
import { join } from "node:path";
import { expect, onTestFinished } from "vitest";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  connect,
  createServer,
  encodeFrame,
  type Client,
  type Frame,
  type HandlerContext,
  type Interceptor,
  type Server,
  type ServerOptions,
  type ServiceImpl,
} from "ttrpc-es";
import { RequestSchema, ResponseSchema } from "../../gen/ttrpc/request_pb.js";
import { EchoRequestSchema } from "../../gen/ttrpces/interop/v1/interop_pb.js";
import { Interop, RawPeer, tempDir } from "../common.js";

export { Interop, RawPeer };

/**
 * Records every 'uncaughtException' and 'unhandledRejection' of the process
 * while the test runs, and fails the test if there was any.
 */
export function trapProcessErrors(): unknown[] {
  const errors: unknown[] = [];
  const onError = (e: unknown) => errors.push(e);
  process.on("uncaughtException", onError);
  process.on("unhandledRejection", onError);
  onTestFinished(() => {
    process.off("uncaughtException", onError);
    process.off("unhandledRejection", onError);
    expect(errors, "exceptions escaped to the process").toEqual([]);
  });
  return errors;
}

/** Lets the event loop run until `cond` holds; fails after `withinMs` of turns (no timers). */
export async function until(cond: () => boolean, what: string, withinMs = 5000): Promise<void> {
  const start = performance.now();
  while (!cond()) {
    if (performance.now() - start > withinMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise<void>((r) => setImmediate(r));
  }
}

/** Every call the server started, by its signal: an interceptor sees them all. */
export class CallTracker {
  readonly signals: AbortSignal[] = [];
  readonly interceptor: Interceptor = (next) => (req) => {
    this.signals.push(req.signal);
    return next(req);
  };

  get open(): number {
    return this.signals.filter((s) => !s.aborted).length;
  }
}

/** Resolves when the handler's signal fires; rejects with its reason (a handler that parks). */
export function park(ctx: HandlerContext): Promise<never> {
  return new Promise<never>((_, reject) => {
    if (ctx.signal.aborted) reject(ctx.signal.reason);
    ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason), { once: true });
  });
}

/**
 * An Interop implementation safe to feed random requests: no timers, no
 * allocations sized by the request; `delayMs > 0` parks until cancelled.
 */
export const tameImpl: ServiceImpl<typeof Interop> = {
  async echo(req, ctx) {
    if (req.delayMs > 0) await park(ctx);
    return { text: req.text };
  },
  echoEmpty() {
    return {};
  },
  async *serverStream(req) {
    for (let i = 0; i < Math.min(req.count, 3); i++) yield { seq: i, text: req.text };
  },
  async clientStream(reqs) {
    let seq = 0;
    for await (const _ of reqs) seq++;
    return { seq };
  },
  async *bidi(reqs) {
    let seq = 0;
    for await (const r of reqs) yield { seq: seq++, text: r.text };
  },
};

/**
 * A server on a unix socket with a tracker, and a well-behaved client on its
 * own connection (the bystander that must keep being served).
 */
export async function hostileServer(
  opts: { server?: ServerOptions; impl?: Partial<ServiceImpl<typeof Interop>> } = {},
): Promise<{ server: Server; path: string; bystander: Client; tracker: CallTracker; dir: string }> {
  const tracker = new CallTracker();
  const dir = tempDir();
  const path = join(dir, "hostile.sock");
  const server = createServer({
    ...opts.server,
    interceptors: [tracker.interceptor, ...(opts.server?.interceptors ?? [])],
  }).register(Interop, opts.impl ?? tameImpl);
  await server.listen(path);
  const bystander = await connect(path);
  onTestFinished(async () => {
    bystander.close();
    await server.close();
  });
  return { server, path, bystander, tracker, dir };
}

/** The bystander is still served promptly. */
export async function expectServing(client: Client, text = "still here"): Promise<void> {
  expect((await client.unary(Interop.method.echo, { text })).text).toBe(text);
}

/** A `ttrpc.Request` envelope. */
export function requestBytes(
  method: string,
  payload: Uint8Array = new Uint8Array(0),
  service = Interop.typeName,
): Uint8Array {
  return toBinary(RequestSchema, create(RequestSchema, { service, method, payload }));
}

export function requestFrame(id: number, method: string, payload?: Uint8Array, flags = 0): Uint8Array {
  return encodeFrame(id, 1, flags, requestBytes(method, payload));
}

export const echoBytes = (init: Parameters<typeof create<typeof EchoRequestSchema>>[1]) =>
  toBinary(EchoRequestSchema, create(EchoRequestSchema, init));

/** The status of a Response frame (code 0 when absent). */
export function statusOf(f: Frame): { code: number; message: string } {
  const st = fromBinary(ResponseSchema, f.payload).status;
  return { code: st?.code ?? 0, message: st?.message ?? "" };
}
