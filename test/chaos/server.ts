// The chaos server process: one ttrpc server with the Interop service, every
// handler counted while it runs and honouring its call's signal. Driven by the
// runner over IPC (see messages.ts); run with --expose-gc for heap figures.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createServer, TtrpcError, type Code, type ServiceImpl } from "../../src/index.js";
import { Interop, type EchoRequest } from "../../gen/ttrpces/interop/v1/interop_pb.js";
import { activeResources, settle, stdio, type ServerMessage, type ServerRequest } from "./messages.js";

let activeHandlers = 0;

/** Runs `body` counted as an active handler. */
async function counted<T>(body: () => Promise<T>): Promise<T> {
  activeHandlers++;
  try {
    return await body();
  } finally {
    activeHandlers--;
  }
}

async function* countedStream<T>(body: () => AsyncGenerator<T>): AsyncGenerator<T> {
  activeHandlers++;
  try {
    yield* body();
  } finally {
    activeHandlers--;
  }
}

/** Waits `ms` unless the call ends first; then fails with the call's reason (deadline, cancel, connection gone). */
async function pause(ms: number, signal: AbortSignal): Promise<void> {
  if (ms === 0) return;
  try {
    await sleep(ms, undefined, { signal });
  } catch {
    throw signal.reason;
  }
}

function maybeFail(req: EchoRequest): void {
  if (req.failCode !== 0) throw new TtrpcError(req.failMessage, req.failCode as Code);
}

const payloadOf = (req: EchoRequest) => (req.replySize > 0 ? new Uint8Array(req.replySize) : req.payload);

const impl: ServiceImpl<typeof Interop> = {
  echo: (req, ctx) =>
    counted(async () => {
      await pause(req.delayMs, ctx.signal);
      maybeFail(req);
      return { text: req.text, payload: payloadOf(req) };
    }),
  echoEmpty: () => ({}),
  serverStream: (req, ctx) =>
    countedStream(async function* () {
      for (let seq = 0; seq < req.count; seq++) {
        await pause(req.delayMs, ctx.signal);
        yield { seq, text: req.text, payload: payloadOf(req) };
      }
      maybeFail(req);
    }),
  clientStream: (reqs, ctx) =>
    counted(async () => {
      let seq = 0;
      let totalBytes = 0n;
      for await (const r of reqs) {
        await pause(r.delayMs, ctx.signal);
        maybeFail(r);
        seq++;
        totalBytes += BigInt(r.payload.length);
      }
      return { seq, totalBytes };
    }),
  bidi: (reqs, ctx) =>
    countedStream(async function* () {
      let seq = 0;
      for await (const r of reqs) {
        await pause(r.delayMs, ctx.signal);
        maybeFail(r);
        yield { seq: seq++, text: r.text, payload: r.payload };
      }
    }),
};

const send = (m: ServerMessage) => process.send!(m);
const gc = (globalThis as { gc?: () => void }).gc;

const dir = mkdtempSync(join(tmpdir(), "ttrpc-es-chaos-"));
const server = createServer().register(Interop, impl);
const address = await server.listen(join(dir, "chaos.sock"));
let base = new Map<string, number>();

process.on("message", async (m: ServerRequest) => {
  if (m.type === "heap") {
    // Twice: the first collection can leave garbage the second frees.
    gc?.();
    gc?.();
    send({ type: "heap", heapUsed: process.memoryUsage().heapUsed, rss: process.memoryUsage.rss() });
  } else if (m.type === "settle") {
    const left = await settle(base, 10_000, () => activeHandlers === 0);
    send({ type: "settled", activeHandlers, leftover: left });
  } else if (m.type === "stop") {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
    process.disconnect();
  }
});
// With the IPC channel held (by the listener above) and stdio open.
stdio();
base = activeResources();
send({ type: "ready", address });
