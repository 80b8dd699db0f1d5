// What the benchmark processes share: the grpc-js service definition, the raw
// framing of the raw-node ceiling, flag parsing and small measuring helpers.
// Nothing here imports test code: the harness builds into dist-bench/bench/ alone.
import type { Socket } from "node:net";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import type { ServiceDefinition } from "@grpc/grpc-js";
import {
  EchoRequestSchema,
  EchoResponseSchema,
  type EchoRequest,
  type EchoResponse,
} from "../gen/ttrpces/interop/v1/interop_pb.js";

/** The three implementations a bench process (server or client) can be. */
export type NodeImpl = "ttrpc-es" | "grpc-js" | "raw-node";
export const nodeImpls: readonly NodeImpl[] = ["ttrpc-es", "grpc-js", "raw-node"];

/** Messages per stream in the stream benchmarks, as the Go peer (streamsPerWorker). */
export const STREAM_MESSAGES = 256;

// --- flags ---------------------------------------------------------------

/** `--name value` flags; a flag followed by another flag (or nothing) is "true". */
export function parseFlags(argv: readonly string[]): Map<string, string> {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith("--")) throw new Error(`unexpected argument ${JSON.stringify(a)}`);
    const next = argv[i + 1];
    if (next === undefined || next.startsWith("--")) flags.set(a.slice(2), "true");
    else {
      flags.set(a.slice(2), next);
      i++;
    }
  }
  return flags;
}

export function numberFlag(flags: Map<string, string>, name: string, fallback: number): number {
  const v = flags.get(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${name} must be a number, got ${JSON.stringify(v)}`);
  return n;
}

export function stringFlag(flags: Map<string, string>, name: string): string {
  const v = flags.get(name);
  if (v === undefined || v === "true") throw new Error(`--${name} is required`);
  return v;
}

export function implFlag(flags: Map<string, string>): NodeImpl {
  const impl = stringFlag(flags, "impl");
  if (!(nodeImpls as readonly string[]).includes(impl))
    throw new Error(`--impl must be one of ${nodeImpls.join(", ")}`);
  return impl as NodeImpl;
}

// --- process stats -------------------------------------------------------

/** What a bench process reports about itself (after a full GC when --expose-gc is on). */
export interface ProcessStats {
  rss: number;
  heapUsed: number;
  external: number;
  /** process.getActiveResourcesInfo().length: sockets, pipes, timers and so on. */
  handles: number;
  /** The resources by kind, for the report. */
  handleKinds: Record<string, number>;
}

export function processStats(): ProcessStats {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc !== undefined) {
    gc();
    gc();
  }
  const mem = process.memoryUsage();
  const handleKinds: Record<string, number> = {};
  const info = process.getActiveResourcesInfo();
  for (const k of info) handleKinds[k] = (handleKinds[k] ?? 0) + 1;
  return { rss: mem.rss, heapUsed: mem.heapUsed, external: mem.external, handles: info.length, handleKinds };
}

/**
 * Reads stdin line by line. Bench processes exit when stdin ends, so a crashed
 * harness leaves nothing behind.
 */
export function onStdinLines(onLine: (line: string) => void, onEnd: () => void): void {
  let buf = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (chunk: string) => {
    buf += chunk;
    for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line !== "") onLine(line);
    }
  });
  process.stdin.on("end", onEnd);
}

/** The percentile of sorted values, picked as the Go peer does (index p·(n−1), truncated). */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.floor(p * (sorted.length - 1))]!;
}

// --- grpc-js -------------------------------------------------------------

function serialize<T extends EchoRequest | EchoResponse>(schema: typeof EchoRequestSchema | typeof EchoResponseSchema) {
  return (m: T): Buffer => {
    const u8 = toBinary(schema as typeof EchoRequestSchema, m as EchoRequest);
    return Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength); // a view, not a copy
  };
}

const reqSer = serialize<EchoRequest>(EchoRequestSchema);
const resSer = serialize<EchoResponse>(EchoResponseSchema);
const reqDe = (b: Buffer): EchoRequest => fromBinary(EchoRequestSchema, b);
const resDe = (b: Buffer): EchoResponse => fromBinary(EchoResponseSchema, b);

function method(name: string, requestStream: boolean, responseStream: boolean) {
  return {
    path: `/ttrpces.interop.v1.Interop/${name}`,
    requestStream,
    responseStream,
    requestSerialize: reqSer,
    requestDeserialize: reqDe,
    responseSerialize: resSer,
    responseDeserialize: resDe,
  };
}

/**
 * The Interop service for grpc-js, with protobuf-es doing the (de)serializing,
 * so grpc-js does the same message work as ttrpc-es.
 */
export const grpcInterop = {
  Echo: method("Echo", false, false),
  ServerStream: method("ServerStream", false, true),
  ClientStream: method("ClientStream", true, false),
  Bidi: method("Bidi", true, true),
} satisfies ServiceDefinition;

/** Channel options both grpc-js sides use: room for the 1 MiB echo. */
export const grpcOptions = {
  "grpc.max_receive_message_length": 8 << 20,
  "grpc.max_send_message_length": 8 << 20,
};

// --- raw-node framing ----------------------------------------------------
//
// The ceiling: ttrpc's 10-byte header (length u32, stream id u32, type u8,
// flags u8, big endian) and no protobuf at all. Requests (type 1) choose the
// call shape by their flags: 0 unary (payload echoed in a Response), RemoteClosed
// server stream (payload: count u32, size u32; count Data frames then an empty
// Response), RemoteOpen client stream (payload "c": Data frames counted until
// one with RemoteClosed, answered by a Response with the count u32) or bidi
// (payload "b": each Data frame echoed).

export const RAW_HEADER = 10;
export const RawType = { Request: 1, Response: 2, Data: 3 } as const;
export const RawFlags = { RemoteClosed: 1, RemoteOpen: 2, NoData: 4 } as const;

export function rawHeader(length: number, streamId: number, type: number, flags: number): Buffer {
  const h = Buffer.allocUnsafe(RAW_HEADER);
  h.writeUInt32BE(length, 0);
  h.writeUInt32BE(streamId, 4);
  h[8] = type;
  h[9] = flags;
  return h;
}

// As the runtime's FrameDecoder: payloads this big are read straight into place...
const RAW_DIRECT_MIN = 16 * 1024;
// ...and other reads land in one reused buffer of Node's own read size.
const RAW_SCRATCH = 64 * 1024;

/**
 * Splits a byte stream into frames, read as the runtime reads: through
 * `readTarget`/`filled` (net.Socket's `onread`), the kernel copies each read
 * into a buffer the decoder names, a big payload's rest straight into the
 * payload, so the ceiling reads no worse than ttrpc-es does (bench/README.md,
 * "raw-node"). Other payloads are views into a copy of the read they came in.
 */
export class RawDecoder {
  #chunks: Buffer[] = [];
  #buffered = 0;
  #scratch: Buffer | undefined;
  // The big payload being read into place, its header and how much has landed.
  #body: Buffer | undefined;
  #bodyHead: [streamId: number, type: number, flags: number] = [0, 0, 0];
  #bodyFill = 0;
  #intoBody = false;
  // After a big payload only the next header is read, so that the payload after it lands in place too.
  #bigLast = false;

  constructor(private readonly onFrame: (streamId: number, type: number, flags: number, payload: Buffer) => void) {}

  #push(chunk: Buffer): void {
    if (this.#chunks.length === 0) {
      // Fast path: parse straight out of the chunk.
      let off = 0;
      while (chunk.length - off >= RAW_HEADER) {
        const len = chunk.readUInt32BE(off);
        if (chunk.length - off - RAW_HEADER < len) break;
        const p = off + RAW_HEADER;
        this.onFrame(chunk.readUInt32BE(off + 4), chunk[off + 8]!, chunk[off + 9]!, chunk.subarray(p, p + len));
        off = p + len;
      }
      if (off < chunk.length) {
        this.#chunks.push(off === 0 ? chunk : chunk.subarray(off));
        this.#buffered = chunk.length - off;
      }
      return;
    }
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    while (this.#buffered >= RAW_HEADER) {
      const head = this.#chunks[0]!.length >= RAW_HEADER ? this.#chunks[0]! : this.#flatten();
      const len = head.readUInt32BE(0);
      if (this.#buffered < RAW_HEADER + len) return;
      const all = this.#flatten();
      const rest = all.subarray(RAW_HEADER + len);
      this.#chunks = [];
      this.#buffered = 0;
      this.onFrame(all.readUInt32BE(4), all[8]!, all[9]!, all.subarray(RAW_HEADER, RAW_HEADER + len));
      if (rest.length > 0) this.#push(rest);
      return;
    }
  }

  /** Where the next read should land (net.Socket's `onread.buffer`); follow each read with {@link filled}. */
  readTarget(): Buffer {
    if (this.#body !== undefined) {
      this.#intoBody = true;
      return this.#body.subarray(this.#bodyFill);
    }
    this.#intoBody = false;
    this.#scratch ??= Buffer.allocUnsafe(RAW_SCRATCH);
    return this.#bigLast && this.#buffered === 0 ? this.#scratch.subarray(0, RAW_HEADER) : this.#scratch;
  }

  /** `n` bytes landed in the buffer {@link readTarget} returned last. */
  filled(n: number): void {
    if (this.#intoBody) {
      this.#bodyFill += n;
      const body = this.#body!;
      if (this.#bodyFill < body.length) return;
      this.#body = undefined;
      this.#bigLast = true;
      const [id, type, flags] = this.#bodyHead;
      this.onFrame(id, type, flags, body);
      return;
    }
    this.#bigLast = false;
    // A copy: the scratch is read into again, and frames or their start may be kept.
    this.#push(Buffer.from(this.#scratch!.subarray(0, n)));
    this.#startBody();
  }

  // A big frame begun in the buffered bytes moves into a buffer of its own, where the rest will land.
  #startBody(): void {
    if (this.#buffered < RAW_HEADER) return;
    const all = this.#flatten();
    const len = all.readUInt32BE(0);
    if (len < RAW_DIRECT_MIN) return;
    this.#body = Buffer.allocUnsafe(len);
    this.#bodyFill = all.copy(this.#body, 0, RAW_HEADER);
    this.#bodyHead = [all.readUInt32BE(4), all[8]!, all[9]!];
    this.#chunks = [];
    this.#buffered = 0;
  }

  #flatten(): Buffer {
    const all = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#buffered);
    this.#chunks = [all];
    return all;
  }
}

// Frames of one turn are joined up to this many bytes; bigger turns leave
// corked, in one writev, never copied (the runtime's Channel does the same).
const RAW_BATCH = 64 * 1024;

/**
 * Writes every frame of one event-loop turn in one write, as the runtime's
 * Channel does: a small frame is one buffer (header and payload), frames
 * queue until `flush()` (the server calls it at the end of each data event,
 * so a ping-pong is one write per data event) or until nextTick.
 */
export class RawWriter {
  #pending: Uint8Array[] = [];
  #bytes = 0;
  #scheduled = false;
  constructor(readonly socket: Socket) {}

  /** Queues a frame; false when the socket's buffer is over its high-water mark. */
  frame(streamId: number, type: number, flags: number, payload?: Uint8Array): boolean {
    const len = payload?.length ?? 0;
    if (len <= 16 * 1024) {
      const b = Buffer.allocUnsafe(RAW_HEADER + len);
      b.writeUInt32BE(len, 0);
      b.writeUInt32BE(streamId, 4);
      b[8] = type;
      b[9] = flags;
      if (len > 0) b.set(payload!, RAW_HEADER);
      this.#queue(b);
    } else {
      this.#queue(rawHeader(len, streamId, type, flags));
      this.#queue(payload!);
    }
    return !this.socket.writableNeedDrain;
  }

  #queue(b: Uint8Array): void {
    this.#pending.push(b);
    this.#bytes += b.length;
    if (this.#bytes >= RAW_BATCH) this.flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      process.nextTick(this.flush);
    }
  }

  /** Writes what is queued: one buffer, or one corked writev past RAW_BATCH. */
  flush = (): void => {
    this.#scheduled = false;
    const list = this.#pending;
    if (list.length === 0) return;
    const bytes = this.#bytes;
    this.#pending = [];
    this.#bytes = 0;
    const socket = this.socket;
    if (socket.destroyed) return;
    if (list.length === 1) socket.write(list[0]!);
    else if (bytes <= RAW_BATCH) socket.write(Buffer.concat(list, bytes));
    else {
      socket.cork();
      for (const b of list) socket.write(b);
      socket.uncork();
    }
  };

  /** Resolves when the socket's buffer has drained (at once if it is not full). */
  drained(): Promise<void> {
    if (!this.socket.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.socket.off("drain", done);
        this.socket.off("close", done);
        resolve();
      };
      this.socket.on("drain", done);
      this.socket.on("close", done);
    });
  }
}
