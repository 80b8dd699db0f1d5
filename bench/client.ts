// A benchmark client: `node dist-bench/bench/client.js --impl ttrpc-es|grpc-js|raw-node
// --socket PATH --scenario NAME [--size N --concurrency C --seconds S --warmup S --count N --samples K]`.
//
// Throughput scenarios (unary, server-stream, client-stream, bidi) do the same
// work as the Go peer's bench-* scenarios (test/interop/go/peer*/bench.go) and
// print the same JSON line: {ops, bytes, seconds, p50_us, p99_us, size,
// concurrency}. Streams carry 256 messages; one server- or client-stream op is
// one message, one bidi op is one round trip on a stream kept open. Before the
// measured window the same workers run for --warmup seconds and finish their
// streams, so JIT and (for grpc-js) channel warm-up are not measured.
//
// Memory scenarios (conns, streams, calls) stop at barriers: they print
// {"barrier": NAME, "client": ProcessStats, ...} and wait for a line on stdin
// while the harness measures the server. slow-consumer (ttrpc-es only) measures
// unary latency on a connection with and without a stalled server stream.
import { connect as netConnect, type Socket } from "node:net";
import { once } from "node:events";
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { connect, type Client, type TtrpcError } from "../src/index.js";
import {
  EchoRequestSchema,
  Interop,
  type EchoRequest,
  type EchoResponse,
} from "../gen/ttrpces/interop/v1/interop_pb.js";
import {
  RawDecoder,
  RawFlags,
  RawType,
  RawWriter,
  STREAM_MESSAGES,
  grpcInterop,
  grpcOptions,
  implFlag,
  numberFlag,
  onStdinLines,
  parseFlags,
  percentile,
  processStats,
  stringFlag,
  type NodeImpl,
} from "./common.js";

const now = () => performance.now();

// process.stdout is made on first use: make it now, so handle counts at the first barrier include it.
void process.stdout.writable;

/** Runs until `end` (a performance.now() time), calling record(bytes) after each op. */
type Worker = (end: number, record: (bytes: number) => void, finishStreams: boolean) => Promise<void>;

/** One connection of one implementation, as the scenarios need it. */
interface Conn {
  unary(size: number): () => Promise<void>;
  serverStream(size: number): Worker;
  clientStream(size: number): Worker;
  bidi(size: number): Worker;
  /** Opens a bidi stream and round-trips one message on it; resolves to its closer. */
  openStream(): Promise<() => Promise<void>>;
  close(): void;
}

function mismatch(got: number, want: number): Error {
  return new Error(`echoed ${got} bytes, sent ${want}`);
}

/** An async iterable fed by push(), for ping-pong bidi streams. */
class Pushable<T> implements AsyncIterable<T> {
  #items: T[] = [];
  #wake: (() => void) | undefined;
  #ended = false;
  push(item: T): void {
    this.#items.push(item);
    this.#wake?.();
  }
  end(): void {
    this.#ended = true;
    this.#wake?.();
  }
  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      const item = this.#items.shift();
      if (item !== undefined) {
        yield item;
        continue;
      }
      if (this.#ended) return;
      await new Promise<void>((r) => (this.#wake = r));
      this.#wake = undefined;
    }
  }
}

// --- ttrpc-es ------------------------------------------------------------

async function ttrpcConn(socket: string): Promise<Conn> {
  return ttrpcConnOn(await connect(`unix:${socket}`));
}

function ttrpcConnOn(client: Client): Conn {
  const m = Interop.method;
  return {
    unary(size) {
      const req = create(EchoRequestSchema, { payload: new Uint8Array(size) });
      return async () => {
        const res = await client.unary(m.echo, req);
        if (res.payload.length !== size) throw mismatch(res.payload.length, size);
      };
    },
    serverStream(size) {
      const req = create(EchoRequestSchema, { count: STREAM_MESSAGES, replySize: size });
      return async (end, record, finish) => {
        while (now() < end) {
          for await (const msg of client.serverStream(m.serverStream, req)) {
            record(msg.payload.length);
            if (!finish && now() >= end) break;
          }
        }
      };
    },
    clientStream(size) {
      const req = create(EchoRequestSchema, { payload: new Uint8Array(size) });
      return async (end, record, finish) => {
        while (now() < end) {
          let sent = 0;
          const inputs = (async function* () {
            while (sent < STREAM_MESSAGES && (finish || now() < end)) {
              yield req;
              sent++;
              record(size);
            }
          })();
          const res = await client.clientStream(m.clientStream, inputs);
          if (res.seq !== sent) throw new Error(`server counted ${res.seq} messages, sent ${sent}`);
        }
      };
    },
    bidi(size) {
      const req = create(EchoRequestSchema, { payload: new Uint8Array(size) });
      return async (end, record) => {
        const inputs = new Pushable<EchoRequest>();
        const out = client.bidiStream(m.bidi, inputs)[Symbol.asyncIterator]();
        while (now() < end) {
          inputs.push(req);
          const r = await out.next();
          if (r.done === true) throw new Error("bidi stream ended early");
          if (r.value.payload.length !== size) throw mismatch(r.value.payload.length, size);
          record(size);
        }
        inputs.end();
        while ((await out.next()).done !== true);
      };
    },
    async openStream() {
      const inputs = new Pushable<EchoRequest>();
      const out = client.bidiStream(m.bidi, inputs)[Symbol.asyncIterator]();
      inputs.push(create(EchoRequestSchema, { text: "open" }));
      if ((await out.next()).done === true) throw new Error("bidi stream ended early");
      return async () => {
        inputs.end();
        while ((await out.next()).done !== true);
      };
    },
    close: () => client.close(),
  };
}

// --- grpc-js -------------------------------------------------------------

const GrpcClient = grpc.makeGenericClientConstructor(grpcInterop, "Interop");

interface GrpcInterop extends grpc.Client {
  Echo(req: EchoRequest, cb: (err: grpc.ServiceError | null, res?: EchoResponse) => void): grpc.ClientUnaryCall;
  ServerStream(req: EchoRequest): grpc.ClientReadableStream<EchoResponse>;
  ClientStream(cb: (err: grpc.ServiceError | null, res?: EchoResponse) => void): grpc.ClientWritableStream<EchoRequest>;
  Bidi(): grpc.ClientDuplexStream<EchoRequest, EchoResponse>;
}

async function grpcConn(socket: string): Promise<Conn> {
  // A local subchannel pool: every client its own connection (the rss-per-connection row needs that).
  const client = new GrpcClient(`unix:${socket}`, grpc.credentials.createInsecure(), {
    ...grpcOptions,
    "grpc.use_local_subchannel_pool": 1,
  }) as unknown as GrpcInterop;
  await new Promise<void>((resolve, reject) =>
    client.waitForReady(Date.now() + 10_000, (err) => (err ? reject(err) : resolve())),
  );
  const echo = (req: EchoRequest) =>
    new Promise<EchoResponse>((resolve, reject) => client.Echo(req, (err, res) => (err ? reject(err) : resolve(res!))));
  return {
    unary(size) {
      const req = create(EchoRequestSchema, { payload: new Uint8Array(size) });
      return async () => {
        const res = await echo(req);
        if (res.payload.length !== size) throw mismatch(res.payload.length, size);
      };
    },
    serverStream(size) {
      const req = create(EchoRequestSchema, { count: STREAM_MESSAGES, replySize: size });
      return async (end, record, finish) => {
        while (now() < end) {
          const call = client.ServerStream(req);
          for await (const msg of call as AsyncIterable<EchoResponse>) {
            record(msg.payload.length);
            if (!finish && now() >= end) {
              call.cancel();
              break;
            }
          }
        }
      };
    },
    clientStream(size) {
      const req = create(EchoRequestSchema, { payload: new Uint8Array(size) });
      return async (end, record, finish) => {
        while (now() < end) {
          let sent = 0;
          let result!: Promise<EchoResponse>;
          const call = await new Promise<grpc.ClientWritableStream<EchoRequest>>((started) => {
            result = new Promise((resolve, reject) => {
              started(client.ClientStream((err, res) => (err ? reject(err) : resolve(res!))));
            });
          });
          while (sent < STREAM_MESSAGES && (finish || now() < end)) {
            const ok = call.write(req);
            sent++;
            record(size);
            if (!ok) await once(call, "drain");
          }
          call.end();
          const res = await result;
          if (res.seq !== sent) throw new Error(`server counted ${res.seq} messages, sent ${sent}`);
        }
      };
    },
    bidi(size) {
      const req = create(EchoRequestSchema, { payload: new Uint8Array(size) });
      return async (end, record) => {
        const call = client.Bidi();
        const out = (call as AsyncIterable<EchoResponse>)[Symbol.asyncIterator]();
        while (now() < end) {
          call.write(req);
          const r = await out.next();
          if (r.done === true) throw new Error("bidi stream ended early");
          if (r.value.payload.length !== size) throw mismatch(r.value.payload.length, size);
          record(size);
        }
        call.end();
        while ((await out.next()).done !== true);
      };
    },
    async openStream() {
      const call = client.Bidi();
      const out = (call as AsyncIterable<EchoResponse>)[Symbol.asyncIterator]();
      call.write(create(EchoRequestSchema, { text: "open" }));
      if ((await out.next()).done === true) throw new Error("bidi stream ended early");
      return async () => {
        call.end();
        while ((await out.next()).done !== true);
      };
    },
    close: () => client.close(),
  };
}

// --- raw-node ------------------------------------------------------------

/** Frames of one raw stream, as an async queue. */
class FrameQueue {
  #frames: { type: number; flags: number; payload: Buffer }[] = [];
  #wake: (() => void) | undefined;
  push(type: number, flags: number, payload: Buffer): void {
    this.#frames.push({ type, flags, payload });
    this.#wake?.();
  }
  async next(): Promise<{ type: number; flags: number; payload: Buffer }> {
    for (;;) {
      const f = this.#frames.shift();
      if (f !== undefined) return f;
      await new Promise<void>((r) => (this.#wake = r));
      this.#wake = undefined;
    }
  }
}

async function rawConn(socket: string): Promise<Conn> {
  const streams = new Map<number, (type: number, flags: number, payload: Buffer) => void>();
  const decoder = new RawDecoder((id, type, flags, payload) => streams.get(id)?.(type, flags, payload));
  // Reads land as the runtime's do (common.ts, RawDecoder).
  const onread = {
    buffer: () => decoder.readTarget(),
    callback: (n: number) => {
      decoder.filled(n);
      return true;
    },
  };
  const sock: Socket = netConnect({ path: socket, onread });
  await once(sock, "connect");
  const out = new RawWriter(sock);
  let nextId = 1;
  let closedError: Error | undefined;
  sock.on("error", (e) => (closedError = e));
  sock.on("close", () => {
    closedError ??= new Error("raw connection closed");
    for (const h of streams.values()) h(0, 0, Buffer.alloc(0));
  });
  const check = (type: number) => {
    if (type === 0) throw closedError!;
  };
  const openQueue = (): [number, FrameQueue] => {
    const id = nextId;
    nextId += 2;
    const q = new FrameQueue();
    streams.set(id, (t, f, p) => q.push(t, f, p));
    return [id, q];
  };
  const openBidi = (): [number, FrameQueue] => {
    const [id, q] = openQueue();
    out.frame(id, RawType.Request, RawFlags.RemoteOpen, Buffer.from("b"));
    return [id, q];
  };
  const closeBidi = async (id: number, q: FrameQueue) => {
    out.frame(id, RawType.Data, RawFlags.RemoteClosed | RawFlags.NoData);
    for (let f = await q.next(); (f.flags & RawFlags.RemoteClosed) === 0; f = await q.next()) check(f.type);
    streams.delete(id);
  };
  return {
    unary(size) {
      const payload = Buffer.alloc(size);
      return async () => {
        const id = nextId;
        nextId += 2;
        const n = await new Promise<number>((resolve, reject) => {
          streams.set(id, (type, _f, p) => {
            streams.delete(id);
            if (type === 0) reject(closedError);
            else resolve(p.length);
          });
          out.frame(id, RawType.Request, 0, payload);
        });
        if (n !== size) throw mismatch(n, size);
      };
    },
    serverStream(size) {
      const req = Buffer.alloc(8);
      req.writeUInt32BE(STREAM_MESSAGES, 0);
      req.writeUInt32BE(size, 4);
      return async (end, record, finish) => {
        while (now() < end) {
          const [id, q] = openQueue();
          out.frame(id, RawType.Request, RawFlags.RemoteClosed, req);
          for (;;) {
            const f = await q.next();
            check(f.type);
            if (f.type === RawType.Response) break;
            record(f.payload.length);
            if (!finish && now() >= end) break;
          }
          streams.delete(id);
        }
      };
    },
    clientStream(size) {
      const payload = Buffer.alloc(size);
      return async (end, record, finish) => {
        while (now() < end) {
          const [id, q] = openQueue();
          out.frame(id, RawType.Request, RawFlags.RemoteOpen, Buffer.from("c"));
          let sent = 0;
          while (sent < STREAM_MESSAGES && (finish || now() < end)) {
            const ok = out.frame(id, RawType.Data, 0, payload);
            sent++;
            record(size);
            if (!ok) await out.drained();
          }
          out.frame(id, RawType.Data, RawFlags.RemoteClosed | RawFlags.NoData);
          const f = await q.next();
          check(f.type);
          streams.delete(id);
          const seq = f.payload.readUInt32BE(0);
          if (seq !== sent) throw new Error(`server counted ${seq} messages, sent ${sent}`);
        }
      };
    },
    bidi(size) {
      const payload = Buffer.alloc(size);
      return async (end, record) => {
        const [id, q] = openBidi();
        while (now() < end) {
          out.frame(id, RawType.Data, 0, payload);
          const f = await q.next();
          check(f.type);
          if (f.payload.length !== size) throw mismatch(f.payload.length, size);
          record(size);
        }
        await closeBidi(id, q);
      };
    },
    async openStream() {
      const [id, q] = openBidi();
      out.frame(id, RawType.Data, 0, Buffer.from("open"));
      check((await q.next()).type);
      return () => closeBidi(id, q);
    },
    close: () => sock.destroy(),
  };
}

const connectors: Record<NodeImpl, (socket: string) => Promise<Conn>> = {
  "ttrpc-es": ttrpcConn,
  "grpc-js": grpcConn,
  "raw-node": rawConn,
};

// --- measuring -----------------------------------------------------------

interface RunResult {
  ops: number;
  bytes: number;
  seconds: number;
  p50_us: number;
  p99_us: number;
}

/** Runs `concurrency` workers for `seconds`, as the Go peer's peerkit.Bench. */
async function measure(
  seconds: number,
  concurrency: number,
  newWorker: () => Worker,
  finishStreams: boolean,
): Promise<RunResult> {
  const latencies: number[] = [];
  let bytes = 0;
  const start = now();
  const end = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      const worker = newWorker();
      let t = now();
      await worker(
        end,
        (n) => {
          const at = now();
          latencies.push(at - t);
          bytes += n;
          t = at;
        },
        finishStreams,
      );
    }),
  );
  const elapsed = (now() - start) / 1000;
  const sorted = Float64Array.from(latencies).sort();
  return {
    ops: latencies.length,
    bytes,
    seconds: elapsed,
    p50_us: percentile(sorted, 0.5) * 1000,
    p99_us: percentile(sorted, 0.99) * 1000,
  };
}

function unaryWorker(conn: Conn, size: number): Worker {
  const call = conn.unary(size);
  return async (end, record) => {
    while (now() < end) {
      await call();
      record(size);
    }
  };
}

// --- stdin barriers ------------------------------------------------------

const lineWaiters: ((line: string) => void)[] = [];
const pendingLines: string[] = [];
onStdinLines(
  (line) => {
    const w = lineWaiters.shift();
    if (w !== undefined) w(line);
    else pendingLines.push(line);
  },
  // The harness went away: nothing left to report to.
  () => process.exit(3),
);

function emit(obj: object): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

/** Reports this process's stats and waits for the harness to measure the server. */
async function barrier(name: string, extra: object = {}): Promise<void> {
  emit({ barrier: name, client: processStats(), ...extra });
  const line = pendingLines.shift();
  if (line !== undefined) return;
  await new Promise<string>((r) => lineWaiters.push(r));
}

/** Runs `fn` `count` times with `parallel` in flight. */
async function inParallel(count: number, parallel: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(parallel, count) }, async () => {
      while (next < count) await fn(next++);
    }),
  );
}

// --- scenarios -----------------------------------------------------------

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2));
  const impl = implFlag(flags);
  const socket = stringFlag(flags, "socket");
  const scenario = stringFlag(flags, "scenario");
  const size = numberFlag(flags, "size", 16);
  const concurrency = numberFlag(flags, "concurrency", 1);
  const seconds = numberFlag(flags, "seconds", 5);
  const warmup = numberFlag(flags, "warmup", 1);
  const count = numberFlag(flags, "count", 1000);
  const samples = numberFlag(flags, "samples", 10);
  const open = connectors[impl];

  const throughput: Record<string, (c: Conn) => Worker> = {
    unary: (c) => unaryWorker(c, size),
    "server-stream": (c) => c.serverStream(size),
    "client-stream": (c) => c.clientStream(size),
    bidi: (c) => c.bidi(size),
  };
  const make = throughput[scenario];
  if (make !== undefined) {
    const conn = await open(socket);
    if (warmup > 0) await measure(warmup, concurrency, () => make(conn), true);
    // Lets the harness read the server's CPU time at the start of the measured window.
    await barrier("measure");
    const cpu = process.cpuUsage();
    const r = await measure(seconds, concurrency, () => make(conn), false);
    const used = process.cpuUsage(cpu);
    emit({ ...r, size, concurrency, client_cpu_s: (used.user + used.system) / 1e6 });
    process.exit(0);
  }

  switch (scenario) {
    case "conns": {
      // One connection (and call) first, so lazily built state is in the baseline.
      const first = await open(socket);
      await first.unary(16)();
      await barrier("base");
      const conns: Conn[] = [];
      const t0 = now();
      await inParallel(count, 64, async () => {
        const c = await open(socket);
        conns.push(c);
        await c.unary(16)();
      });
      await barrier("open", { count, open_ms: now() - t0 });
      for (const c of conns) c.close();
      first.close();
      emit({ ok: true });
      return process.exit(0);
    }
    case "streams": {
      const conn = await open(socket);
      await (await conn.openStream())();
      await barrier("base");
      const closers: (() => Promise<void>)[] = [];
      const t0 = now();
      await inParallel(count, 256, async () => {
        closers.push(await conn.openStream());
      });
      await barrier("open", { count, open_ms: now() - t0 });
      const t1 = now();
      await inParallel(closers.length, 256, (i) => closers[i]!());
      await barrier("closed", { close_ms: now() - t1 });
      conn.close();
      emit({ ok: true });
      return process.exit(0);
    }
    case "calls": {
      // `count` unary calls, `concurrency` in flight, stopping at `samples` barriers.
      const conn = await open(socket);
      const call = conn.unary(16);
      await call();
      await barrier("s0", { calls: 0 });
      let done = 0;
      const t0 = now();
      for (let s = 1; s <= samples; s++) {
        const target = Math.round((count * s) / samples);
        await inParallel(target - done, concurrency, call);
        done = target;
        await barrier(`s${s}`, { calls: done, elapsed_ms: now() - t0 });
      }
      conn.close();
      emit({ ok: true, calls: done });
      return process.exit(0);
    }
    case "slow-consumer": {
      if (impl !== "ttrpc-es") throw new Error("slow-consumer is a ttrpc-es scenario");
      const client = await connect(`unix:${socket}`);
      const conn = ttrpcConnOn(client);
      if (warmup > 0) await measure(warmup, 1, () => unaryWorker(conn, 16), true);
      const base = await measure(seconds, 1, () => unaryWorker(conn, 16), false);
      // A server stream of 64 KiB messages, read once and then never again, on the same connection.
      const req = create(EchoRequestSchema, { count: 1_000_000, replySize: 64 << 10 });
      const stalled = client.serverStream(Interop.method.serverStream, req)[Symbol.asyncIterator]();
      await stalled.next();
      const slow = await measure(seconds, 1, () => unaryWorker(conn, 16), false);
      // What became of the stalled stream: read a bounded number of messages to find out.
      let outcome = "still open";
      try {
        for (let i = 0; i < 1000; i++) {
          if ((await stalled.next()).done === true) {
            outcome = "ended";
            break;
          }
        }
      } catch (e) {
        outcome = `failed: ${(e as TtrpcError).message}`;
      }
      emit({
        base_p50_us: base.p50_us,
        base_p99_us: base.p99_us,
        p50_us: slow.p50_us,
        p99_us: slow.p99_us,
        ops: slow.ops,
        base_ops: base.ops,
        stalled_stream: outcome,
      });
      client.close();
      return process.exit(0);
    }
    default:
      throw new Error(`unknown scenario ${JSON.stringify(scenario)}`);
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
