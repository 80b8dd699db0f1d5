// Shared test helpers: a temp socket path, the Interop service implemented by
// hand (runtime tests must not depend on our generator), and a raw frame
// peer for byte-level protocol tests.
import { mkdtempSync, rmSync } from "node:fs";
import { createServer as createNetServer, connect as dial, type OnReadOpts, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, onTestFinished, vi } from "vitest";
import { create, toBinary } from "@bufbuild/protobuf";
import {
  type Code,
  FrameDecoder,
  HEADER_LENGTH,
  TtrpcError,
  connect,
  createServer,
  encodeFrame,
  type Client,
  type ClientOptions,
  type Frame,
  type Server,
  type ServerOptions,
  type ServiceImpl,
} from "ttrpc-es";
import { StringValueSchema, anyPack } from "@bufbuild/protobuf/wkt";
import { RequestSchema } from "../gen/ttrpc/request_pb.js";
import { EchoRequestSchema, Interop } from "../gen/ttrpces/interop/v1/interop_pb.js";

export { Interop };

/** Buffers written back to back, as one. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** An encoded frame's body: its buffers joined, without the header. */
export function frameBody(frame: readonly Uint8Array[]): Uint8Array {
  return concat(frame).subarray(HEADER_LENGTH);
}

/** A fake clock for setTimeout and clearTimeout only; promises, I/O and `performance` stay real. */
export function fakeTimeouts(): void {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
}

/**
 * The payload size of an Interop Echo request (with reply_size 1) whose frame
 * payload, the whole Request envelope, is exactly `frameLength` bytes: the
 * size limit applies to the envelope, not the message.
 */
export function echoPayloadForFrame(frameLength: number): number {
  const length = (n: number) =>
    toBinary(
      RequestSchema,
      create(RequestSchema, {
        service: Interop.typeName,
        method: "Echo",
        payload: toBinary(EchoRequestSchema, create(EchoRequestSchema, { payload: new Uint8Array(n), replySize: 1 })),
      }),
    ).length;
  const n = frameLength - (length(frameLength) - frameLength);
  if (length(n) !== frameLength) throw new Error(`no Echo payload gives a ${frameLength}-byte frame`);
  return n;
}

/** Reads a stream to its end: the messages that arrived, and the error it ended with, if any. */
export async function drain<T>(stream: AsyncIterable<T>): Promise<{ messages: T[]; error: unknown }> {
  const messages: T[] = [];
  try {
    for await (const m of stream) messages.push(m);
    return { messages, error: undefined };
  } catch (error) {
    return { messages, error };
  }
}

/** The error `p` rejects with, checked to be an `E` (the test fails if `p` resolves). */
export async function rejection<E extends Error = Error>(
  p: Promise<unknown>,
  type: abstract new (...args: never[]) => E = Error as unknown as abstract new (
    ...args: never[]
  ) => E,
): Promise<E> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(type);
    return err as E;
  }
  throw new Error(`expected a rejection with a ${type.name}, the promise resolved`);
}

/** The error `f` throws, checked to be an `E` (the test fails if it returns). */
export function thrown<E extends Error = Error>(
  f: () => unknown,
  type: abstract new (...args: never[]) => E = Error as unknown as abstract new (
    ...args: never[]
  ) => E,
): E {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(type);
    return err as E;
  }
  throw new Error(`expected a ${type.name} to be thrown, nothing was`);
}

/**
 * A connected pair of unix sockets in a fresh directory: `[dialed, accepted]`.
 * Both are destroyed when the test ends. `onread` goes to the dialed end (a
 * reader that names where each read lands); `allowHalfOpen` to both.
 */
export async function unixSocketPair(
  opts: { onread?: OnReadOpts; allowHalfOpen?: boolean } = {},
): Promise<[Socket, Socket]> {
  const allowHalfOpen = opts.allowHalfOpen ?? false;
  const server = createNetServer({ allowHalfOpen });
  const path = join(tempDir(), "pair.sock");
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const accepted = new Promise<Socket>((resolve) => server.once("connection", resolve));
  try {
    const dialed = dial(
      opts.onread === undefined ? { path, allowHalfOpen } : { path, allowHalfOpen, onread: opts.onread },
    );
    onTestFinished(() => {
      dialed.destroy();
    });
    await new Promise<void>((resolve, reject) => {
      dialed.once("connect", resolve);
      dialed.once("error", reject);
    });
    const peer = await accepted;
    onTestFinished(() => {
      peer.destroy();
    });
    return [dialed, peer];
  } finally {
    server.close();
  }
}

/** A fresh directory removed after the test. */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "ttrpc-es-"));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function waitOrAbort(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(t);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}

function maybeFail(req: { failCode: number; failMessage: string; failWithDetails: boolean }): void {
  if (req.failCode === 0) return;
  const details = req.failWithDetails
    ? [anyPack(StringValueSchema, create(StringValueSchema, { value: req.failMessage }))]
    : [];
  throw new TtrpcError(req.failMessage, req.failCode as Code, { details });
}

/** The Interop service as the interop proto's comments describe it. */
export const interopImpl: ServiceImpl<typeof Interop> = {
  async echo(req, ctx) {
    if (req.delayMs > 0) await waitOrAbort(req.delayMs, ctx.signal);
    maybeFail(req);
    return {
      text: req.text,
      payload: req.replySize > 0 ? new Uint8Array(req.replySize).fill(0x61) : req.payload,
      metadata: [...ctx.metadata].map(([k, v]) => `${k}=${v}`).sort(),
      deadlineMs: BigInt(Math.floor(ctx.timeoutMs() ?? 0)),
    };
  },
  echoEmpty() {
    return {};
  },
  async *serverStream(req, ctx) {
    for (let i = 0; i < req.count; i++) {
      if (req.delayMs > 0) await waitOrAbort(req.delayMs, ctx.signal);
      yield {
        seq: i,
        text: req.text,
        payload: req.replySize > 0 ? new Uint8Array(req.replySize).fill(0x61) : req.payload,
      };
    }
    maybeFail(req);
  },
  async clientStream(reqs) {
    let seq = 0;
    let totalBytes = 0n;
    for await (const r of reqs) {
      maybeFail(r);
      seq++;
      totalBytes += BigInt(r.payload.length);
    }
    return { seq, totalBytes };
  },
  async *bidi(reqs) {
    let seq = 0;
    for await (const r of reqs) {
      maybeFail(r);
      yield { seq: seq++, text: r.text, payload: r.payload };
    }
  },
};

/** An Interop server on a unix socket and a client connected to it, closed after the test. */
export async function startPair(
  opts: { server?: ServerOptions; client?: ClientOptions; impl?: Partial<ServiceImpl<typeof Interop>> } = {},
): Promise<{ server: Server; client: Client; address: string; dir: string }> {
  const dir = tempDir();
  const server = createServer(opts.server).register(Interop, opts.impl ?? interopImpl);
  const address = await server.listen(join(dir, "ttrpc.sock"));
  const client = await connect(address, opts.client);
  onTestFinished(async () => {
    client.close();
    await server.close();
  });
  return { server, client, address, dir };
}

/** A peer that speaks raw frames: for protocol tests below the client API. */
export class RawPeer {
  readonly frames: Frame[] = [];
  readonly oversized: { streamId: number; length: number }[] = [];
  #waiters: (() => void)[] = [];
  ended = false;
  readonly decoder = new FrameDecoder(
    {
      frame: (f) => {
        this.frames.push({ ...f, payload: f.payload.slice() });
        this.#wake();
      },
      oversized: (streamId, _t, _f, length) => {
        this.oversized.push({ streamId, length });
        this.#wake();
      },
    },
    Number.MAX_SAFE_INTEGER,
  );

  constructor(readonly socket: Socket) {
    socket.on("data", (c: Buffer) => this.decoder.push(c));
    socket.on("close", () => {
      this.ended = true;
      this.#wake();
    });
    socket.on("error", () => {});
  }

  static async connect(path: string): Promise<RawPeer> {
    const s = new Socket();
    await new Promise<void>((resolve, reject) => {
      s.once("error", reject);
      s.connect({ path }, () => resolve());
    });
    const peer = new RawPeer(s);
    onTestFinished(() => {
      s.destroy();
    });
    return peer;
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** Sends a Request frame for Interop/`method` with `payload`. */
  request(
    streamId: number,
    method: string,
    payload: Uint8Array = new Uint8Array(0),
    flags = 0,
    service = Interop.typeName,
  ): void {
    const req = toBinary(RequestSchema, create(RequestSchema, { service, method, payload }));
    this.write(encodeFrame(streamId, 1, flags, req));
  }

  /** Resolves once `n` frames have arrived (or rejects if the connection closes first). */
  async waitFrames(n: number): Promise<Frame[]> {
    while (this.frames.length < n) {
      if (this.ended) throw new Error(`connection closed after ${this.frames.length} of ${n} frames`);
      await new Promise<void>((r) => this.#waiters.push(r));
    }
    return this.frames.slice(0, n);
  }

  async waitClosed(): Promise<void> {
    while (!this.ended) await new Promise<void>((r) => this.#waiters.push(r));
  }
}
