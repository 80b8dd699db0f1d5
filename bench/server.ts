// A benchmark server: `node dist-bench/bench/server.js --impl ttrpc-es|grpc-js|raw-node --socket PATH`.
// Prints READY once listening, answers each stdin line "stats" with one JSON
// line of ProcessStats (after a full GC when run with --expose-gc), and exits
// when stdin ends or on SIGTERM. Each implementation is a lean Interop echo: no
// metadata, deadline or failure handling, so the runtime is what is measured.
import { createServer as netServer, type Socket } from "node:net";
import { rmSync } from "node:fs";
import type * as grpc from "@grpc/grpc-js";
import { createServer, type ServiceImpl } from "../src/index.js";
import { adoptForDirectReads } from "../src/direct-reads.js";
import { create } from "@bufbuild/protobuf";
import {
  EchoResponseSchema,
  Interop,
  type EchoRequest,
  type EchoResponse,
} from "../gen/ttrpces/interop/v1/interop_pb.js";
import {
  RawDecoder,
  RawFlags,
  RawType,
  RawWriter,
  grpcInterop,
  grpcOptions,
  implFlag,
  onStdinLines,
  parseFlags,
  processStats,
  stringFlag,
  type NodeImpl,
} from "./common.js";

/** reply_size bytes of 'a', as the Go peer's ReplyPayload: one buffer per call. */
function replyPayload(req: EchoRequest): Uint8Array {
  return req.replySize > 0 ? new Uint8Array(req.replySize).fill(0x61) : req.payload;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

const ttrpcImpl: ServiceImpl<typeof Interop> = {
  echo(req) {
    return { payload: replyPayload(req), text: req.text };
  },
  echoEmpty() {
    return {};
  },
  async *serverStream(req, ctx) {
    const payload = replyPayload(req);
    for (let i = 0; i < req.count && !ctx.signal.aborted; i++) {
      if (req.delayMs > 0 && i > 0) await sleep(req.delayMs);
      yield { payload, text: req.text, seq: i };
    }
  },
  async clientStream(reqs) {
    let seq = 0;
    let totalBytes = 0n;
    for await (const r of reqs) {
      seq++;
      totalBytes += BigInt(r.payload.length);
    }
    return { seq, totalBytes };
  },
  async *bidi(reqs) {
    let seq = 0;
    for await (const r of reqs) yield { payload: r.payload, text: r.text, seq: seq++ };
  },
};

async function startTtrpc(socket: string): Promise<() => Promise<void>> {
  const server = createServer().register(Interop, ttrpcImpl);
  await server.listen(socket);
  return () => server.close();
}

async function startGrpc(socket: string): Promise<() => Promise<void>> {
  // Loaded only here, so the other servers' memory rows do not carry grpc-js.
  const { Server, ServerCredentials } = await import("@grpc/grpc-js");
  const server = new Server(grpcOptions);
  server.addService(grpcInterop, {
    Echo(call: grpc.ServerUnaryCall<EchoRequest, EchoResponse>, cb: grpc.sendUnaryData<EchoResponse>) {
      cb(null, create(EchoResponseSchema, { payload: replyPayload(call.request), text: call.request.text }));
    },
    ServerStream(call: grpc.ServerWritableStream<EchoRequest, EchoResponse>) {
      const req = call.request;
      const payload = replyPayload(req);
      let i = 0;
      let cancelled = false;
      call.on("cancelled", () => (cancelled = true));
      const pump = () => {
        while (i < req.count && !cancelled) {
          const ok = call.write(create(EchoResponseSchema, { payload, text: req.text, seq: i++ }));
          if (!ok) {
            call.once("drain", pump);
            return;
          }
        }
        if (!cancelled) call.end();
      };
      pump();
    },
    ClientStream(call: grpc.ServerReadableStream<EchoRequest, EchoResponse>, cb: grpc.sendUnaryData<EchoResponse>) {
      let seq = 0;
      let totalBytes = 0n;
      call.on("data", (r: EchoRequest) => {
        seq++;
        totalBytes += BigInt(r.payload.length);
      });
      call.on("end", () => cb(null, create(EchoResponseSchema, { seq, totalBytes })));
      call.on("error", () => {});
    },
    Bidi(call: grpc.ServerDuplexStream<EchoRequest, EchoResponse>) {
      let seq = 0;
      call.on("data", (r: EchoRequest) =>
        call.write(create(EchoResponseSchema, { payload: r.payload, text: r.text, seq: seq++ })),
      );
      call.on("end", () => call.end());
      call.on("error", () => {});
    },
  });
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix:${socket}`, ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
  );
  return () => new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
}

// The raw-node ceiling: see the framing notes in common.ts.
function serveRaw(accepted: Socket): void {
  const kinds = new Map<number, "c" | "b">(); // open client/bidi streams
  const counts = new Map<number, number>();
  let closed = false;
  const serverStream = async (id: number, count: number, size: number) => {
    const payload = Buffer.alloc(size, 0x61);
    for (let i = 0; i < count && !closed; i++) {
      if (!out.frame(id, RawType.Data, 0, payload)) await out.drained();
    }
    if (!closed) out.frame(id, RawType.Response, 0);
  };
  const decoder = new RawDecoder((id, type, flags, payload) => {
    if (type === RawType.Request) {
      if (flags === 0) out.frame(id, RawType.Response, 0, payload);
      else if (flags === RawFlags.RemoteClosed) void serverStream(id, payload.readUInt32BE(0), payload.readUInt32BE(4));
      else {
        kinds.set(id, payload[0] === 0x62 ? "b" : "c");
        counts.set(id, 0);
      }
      return;
    }
    if (type !== RawType.Data) return;
    const kind = kinds.get(id);
    if ((flags & RawFlags.RemoteClosed) !== 0) {
      if (kind === "c") {
        const n = Buffer.allocUnsafe(4);
        n.writeUInt32BE(counts.get(id)! + ((flags & RawFlags.NoData) === 0 ? 1 : 0));
        out.frame(id, RawType.Response, 0, n);
      } else out.frame(id, RawType.Data, RawFlags.RemoteClosed | RawFlags.NoData);
      kinds.delete(id);
      counts.delete(id);
      return;
    }
    if (kind === "b") out.frame(id, RawType.Data, 0, payload);
    else if (kind === "c") counts.set(id, counts.get(id)! + 1);
  });
  // Reads land as the runtime's do (common.ts, RawDecoder): the connection
  // moves to a socket made with `onread`, as a ttrpc-es server's does.
  // Every answer to one read leaves in one write, before the next read.
  const socket = adoptForDirectReads(accepted, {
    buffer: () => decoder.readTarget(),
    callback: (n: number) => {
      decoder.filled(n);
      out.flush();
      return true;
    },
  });
  if (socket === undefined) throw new Error("an accepted connection could not be moved to direct reads");
  const out = new RawWriter(socket);
  socket.on("close", () => (closed = true));
  socket.on("error", () => {});
}

async function startRaw(socket: string): Promise<() => Promise<void>> {
  const server = netServer(serveRaw);
  rmSync(socket, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ path: socket, backlog: 4096 }, () => resolve());
  });
  return () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
    });
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2));
  const impl: NodeImpl = implFlag(flags);
  const socket = stringFlag(flags, "socket");
  const stop = await (impl === "ttrpc-es" ? startTtrpc : impl === "grpc-js" ? startGrpc : startRaw)(socket);
  let stopping = false;
  const exit = () => {
    if (stopping) return;
    stopping = true;
    // Close with a bound: benchmark clients may still hold connections.
    const t = setTimeout(() => process.exit(0), 500);
    void stop().finally(() => {
      clearTimeout(t);
      process.exit(0);
    });
  };
  process.on("SIGTERM", exit);
  onStdinLines((line) => {
    if (line === "stats") process.stdout.write(`${JSON.stringify(processStats())}\n`);
  }, exit);
  process.stdout.write("READY\n");
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
