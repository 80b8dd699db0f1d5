// The catalogue of named hostile inputs, one row each: what a client sends and
// what the server must do (docs/protocol.md §4-6, §11-13; Go's words where Go
// has them). Every row runs on a fresh server over a unix socket, with the
// process error trap on and a well-behaved bystander connection that must be
// served after the hostile one did its worst. Some rows repeat checks of
// test/runtime/protocol.test.ts so that every named case is in one place.
import { Server as NetServer, Socket } from "node:net";
import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { Code, FrameDecoder, encodeFrame, type Client, type Frame, type ServiceImpl } from "ttrpc-es";
import { checkLeaksAfterAll } from "../leak-check.js";
import { tempDir } from "../common.js";
import {
  type Interop,
  RawPeer,
  echoBytes,
  expectServing,
  hostileServer,
  park,
  requestBytes,
  requestFrame,
  statusOf,
  tameImpl,
  trapProcessErrors,
  until,
  type CallTracker,
} from "./helpers.js";

checkLeaksAfterAll();

const ODD = "StreamID must be odd for client initiated streams";
const REUSED = "StreamID cannot be re-used and must increment";
const INACTIVE = "StreamID is no longer active";
const CLOSE_WITH_DATA = "data close message cannot include data";

/** Counts what the handlers produced; `bidi` parks after its input ends, so a stream stays live after the client's close. */
function catalogueImpl(produced: { n: number }): ServiceImpl<typeof Interop> {
  return {
    ...tameImpl,
    async echo(req, ctx) {
      if (req.delayMs > 0) await park(ctx);
      return { text: req.text, payload: new Uint8Array(Math.min(req.replySize, 1 << 20)) };
    },
    async *serverStream(req) {
      for (let i = 0; i < req.count; i++) {
        produced.n++;
        yield { seq: i, payload: new Uint8Array(Math.min(req.replySize, 1 << 20)) };
      }
    },
    async *bidi(reqs, ctx) {
      for await (const r of reqs) yield { text: r.text };
      await park(ctx);
    },
  };
}

interface Case {
  name: string;
  /** The outcome, in words (the report's table is this column). */
  outcome: string;
  run(t: { peer: RawPeer; tracker: CallTracker; produced: { n: number }; bystander: Client }): Promise<void>;
}

const responseOn = (frames: Frame[], id: number) => frames.find((f) => f.streamId === id && f.type === 2);

async function expectStatus(peer: RawPeer, id: number, code: Code, message?: string | RegExp): Promise<void> {
  await until(() => responseOn(peer.frames, id) !== undefined || peer.ended, `a Response on stream ${id}`);
  const f = responseOn(peer.frames, id);
  expect(f, `no Response on stream ${id}; connection ended: ${peer.ended}`).toBeDefined();
  const st = statusOf(f!);
  expect(st.code, `status on ${id}: ${st.message}`).toBe(code);
  if (message !== undefined) expect(st.message).toMatch(message);
}

/** The connection is still usable: a fresh call on a higher ID is answered OK. */
async function expectUsable(peer: RawPeer, id: number): Promise<void> {
  peer.write(requestFrame(id, "Echo", echoBytes({ text: "ok" })));
  await expectStatus(peer, id, Code.Ok);
}

const cases: Case[] = [
  {
    name: "even stream ID on a Request",
    outcome: `INVALID_ARGUMENT "${ODD}" on that ID; connection kept`,
    async run({ peer }) {
      peer.write(requestFrame(2, "Echo", echoBytes({ text: "even" })));
      await expectStatus(peer, 2, Code.InvalidArgument, ODD);
      await expectUsable(peer, 1);
    },
  },
  {
    name: "even stream ID on a Data frame",
    outcome: `INVALID_ARGUMENT "${ODD}" on that ID; connection kept`,
    async run({ peer }) {
      peer.write(encodeFrame(4, 3, 0, new Uint8Array([1])));
      await expectStatus(peer, 4, Code.InvalidArgument, ODD);
      await expectUsable(peer, 1);
    },
  },
  {
    name: "reused stream ID (after the first call finished)",
    outcome: `INVALID_ARGUMENT "${REUSED}" on that ID; the first call's answer stands`,
    async run({ peer }) {
      peer.write(requestFrame(5, "Echo", echoBytes({ text: "first" })));
      await expectStatus(peer, 5, Code.Ok);
      peer.write(requestFrame(5, "Echo", echoBytes({ text: "again" })));
      await until(() => peer.frames.filter((f) => f.streamId === 5).length === 2, "the second answer on 5");
      expect(statusOf(peer.frames.filter((f) => f.streamId === 5)[1]!)).toEqual({
        code: Code.InvalidArgument,
        message: REUSED,
      });
      await expectUsable(peer, 7);
    },
  },
  {
    name: "reused stream ID while the first call is still running",
    outcome: `INVALID_ARGUMENT "${REUSED}" on that ID; the running call is untouched`,
    async run({ peer, tracker }) {
      peer.write(requestFrame(5, "Echo", echoBytes({ delayMs: 1 })));
      await until(() => tracker.signals.length === 1, "the handler to start");
      peer.write(requestFrame(5, "Echo", echoBytes({ text: "again" })));
      await expectStatus(peer, 5, Code.InvalidArgument, REUSED);
      expect(tracker.open).toBe(1);
      await expectUsable(peer, 7);
    },
  },
  {
    name: "decreasing stream ID",
    outcome: `INVALID_ARGUMENT "${REUSED}" on the lower ID; connection kept`,
    async run({ peer }) {
      peer.write(requestFrame(9, "Echo", echoBytes({})));
      peer.write(requestFrame(3, "Echo", echoBytes({})));
      await expectStatus(peer, 3, Code.InvalidArgument, REUSED);
      await expectStatus(peer, 9, Code.Ok);
      await expectUsable(peer, 11);
    },
  },
  {
    name: "Data on a unary stream",
    outcome: "INVALID_ARGUMENT on that ID, the handler's signal fires (Go v1.2 panics here); connection kept",
    async run({ peer, tracker }) {
      peer.write(requestFrame(1, "Echo", echoBytes({ delayMs: 1 })));
      await until(() => tracker.signals.length === 1, "the handler to start");
      peer.write(encodeFrame(1, 3, 0, echoBytes({ text: "x" })));
      await expectStatus(peer, 1, Code.InvalidArgument);
      await until(() => tracker.open === 0, "the handler's signal");
      await expectUsable(peer, 3);
    },
  },
  {
    name: "Data for a stream never opened",
    outcome: `INVALID_ARGUMENT "${INACTIVE}" on that ID (Go ≤1.2.7 panics here); connection kept`,
    async run({ peer }) {
      peer.write(encodeFrame(21, 3, 0, new Uint8Array([1, 2, 3])));
      await expectStatus(peer, 21, Code.InvalidArgument, INACTIVE);
      await expectUsable(peer, 1);
    },
  },
  {
    name: "Data after close, stream still running",
    outcome: `INVALID_ARGUMENT "${INACTIVE}" on that ID, the handler's signal fires`,
    async run({ peer, tracker }) {
      peer.write(requestFrame(1, "Bidi", new Uint8Array(0), 0x02));
      peer.write(encodeFrame(1, 3, 0x05));
      await until(() => tracker.signals.length === 1, "the handler to start");
      peer.write(encodeFrame(1, 3, 0, echoBytes({ text: "late" })));
      await expectStatus(peer, 1, Code.InvalidArgument, INACTIVE);
      await until(() => tracker.open === 0, "the handler's signal");
      await expectUsable(peer, 3);
    },
  },
  {
    name: "Data after close, stream finished",
    outcome: `INVALID_ARGUMENT "${INACTIVE}" on that ID`,
    async run({ peer }) {
      peer.write(requestFrame(1, "ClientStream", new Uint8Array(0), 0x02));
      peer.write(encodeFrame(1, 3, 0x05));
      await expectStatus(peer, 1, Code.Ok);
      peer.write(encodeFrame(1, 3, 0, new Uint8Array(0)));
      await until(() => peer.frames.filter((f) => f.streamId === 1).length === 2, "the answer to the late Data");
      expect(statusOf(peer.frames.filter((f) => f.streamId === 1)[1]!)).toEqual({
        code: Code.InvalidArgument,
        message: INACTIVE,
      });
    },
  },
  {
    name: "close frame with a payload (Data[RC|ND] + bytes)",
    outcome: `INVALID_ARGUMENT "${CLOSE_WITH_DATA}"; the payload is not delivered`,
    async run({ peer }) {
      peer.write(requestFrame(1, "ClientStream", new Uint8Array(0), 0x02));
      peer.write(encodeFrame(1, 3, 0x05, echoBytes({ text: "smuggled" })));
      await expectStatus(peer, 1, Code.InvalidArgument, CLOSE_WITH_DATA);
      await expectUsable(peer, 3);
    },
  },
  {
    name: "close frame with a payload (Data[RC] + bytes, no 'no data')",
    outcome: `INVALID_ARGUMENT "${CLOSE_WITH_DATA}" (Go delivers the payload, then says so)`,
    async run({ peer }) {
      peer.write(requestFrame(1, "ClientStream", new Uint8Array(0), 0x02));
      peer.write(encodeFrame(1, 3, 0x01, echoBytes({ text: "last" })));
      await expectStatus(peer, 1, Code.InvalidArgument, CLOSE_WITH_DATA);
      await expectUsable(peer, 3);
    },
  },
  {
    name: "unknown frame types (0x00, 0x04, 0x7f, 0xff) and a Response from the client",
    outcome: "ignored, no answer on their IDs; the connection goes on",
    async run({ peer }) {
      for (const type of [0x00, 0x04, 0x7f, 0xff, 0x02])
        peer.write(encodeFrame(1, type, 0xff, new Uint8Array([0x0a, 0x00, 9])));
      peer.write(encodeFrame(13, 0x09, 0, new Uint8Array(0)));
      await expectUsable(peer, 1);
      expect(peer.frames.map((f) => f.streamId)).toEqual([1]);
    },
  },
  {
    name: "a Request that does not decode",
    outcome: 'INVALID_ARGUMENT "unmarshal request error: …" on that ID; the ID counts as used',
    async run({ peer }) {
      peer.write(encodeFrame(1, 1, 0, new Uint8Array([0x0a, 0x05, 0x61])));
      await expectStatus(peer, 1, Code.InvalidArgument, /^unmarshal request error: /);
      peer.write(requestFrame(1, "Echo", echoBytes({})));
      await until(() => peer.frames.length === 2, "the answer to the reused ID");
      expect(statusOf(peer.frames[1]!).code).toBe(Code.InvalidArgument);
      await expectUsable(peer, 3);
    },
  },
  {
    name: "a unary payload that does not decode",
    outcome: 'INTERNAL "ttrpc: error unmarshalling payload: …" (as Go); handler not run',
    async run({ peer, tracker }) {
      peer.write(requestFrame(1, "Echo", new Uint8Array([0x12, 0x05, 0x61])));
      await expectStatus(peer, 1, Code.Internal, /^ttrpc: error unmarshalling payload: /);
      expect(tracker.signals).toHaveLength(0);
      await expectUsable(peer, 3);
    },
  },
  {
    name: "a client-stream message that does not decode",
    outcome: "the call fails with a status on that ID (handler sees the decode error); connection kept",
    async run({ peer, tracker }) {
      peer.write(requestFrame(1, "ClientStream", new Uint8Array(0), 0x02));
      peer.write(encodeFrame(1, 3, 0, new Uint8Array([0x12, 0x05, 0x61])));
      await until(() => responseOn(peer.frames, 1) !== undefined, "the failure");
      expect(statusOf(responseOn(peer.frames, 1)!).code).not.toBe(Code.Ok);
      await until(() => tracker.open === 0, "the handler's signal");
      await expectUsable(peer, 3);
    },
  },
  {
    name: "timeout_nano negative (a Go client already past its deadline)",
    outcome: "DEADLINE_EXCEEDED at once, the handler's signal fires (not a deadline years away)",
    async run({ peer, tracker }) {
      // Request{service, method "Echo", payload {delayMs: 1}, timeout_nano: -5ms as int64}
      const neg = [0x20, 0xc0, 0xe9, 0xce, 0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
      peer.write(encodeFrame(1, 1, 0, Uint8Array.from([...requestBytes("Echo", echoBytes({ delayMs: 1 })), ...neg])));
      await expectStatus(peer, 1, Code.DeadlineExceeded);
      await until(() => tracker.open === 0, "the handler's signal");
    },
  },
  {
    name: "truncated header at EOF",
    outcome: "that connection is closed (no answer); in-flight handlers' signals fire",
    async run({ peer, tracker }) {
      peer.write(requestFrame(1, "Echo", echoBytes({ delayMs: 1 })));
      await until(() => tracker.signals.length === 1, "the handler to start");
      peer.write(new Uint8Array([0, 0, 0, 9, 0]));
      peer.socket.end();
      await peer.waitClosed();
      await until(() => tracker.open === 0, "the handler's signal");
      expect(peer.frames).toEqual([]);
    },
  },
  {
    name: "truncated payload at EOF",
    outcome: "that connection is closed (no answer)",
    async run({ peer }) {
      peer.write(new Uint8Array([0, 0, 0, 9, 0, 0, 0, 1, 1, 0, 0x0a, 0x02]));
      peer.socket.end();
      await peer.waitClosed();
      expect(peer.frames).toEqual([]);
    },
  },
  {
    name: "4 MiB + 1 on a Request",
    outcome:
      'RESOURCE_EXHAUSTED "message length 4194305 exceed maximum message size of 4194304" on that ID; bytes skipped, connection kept',
    async run({ peer }) {
      peer.write(encodeFrame(1, 1, 0, new Uint8Array((4 << 20) + 1)));
      await expectStatus(
        peer,
        1,
        Code.ResourceExhausted,
        "message length 4194305 exceed maximum message size of 4194304",
      );
      await expectUsable(peer, 3);
    },
  },
  {
    name: "4 MiB + 1 on Data of a running client stream",
    outcome: "RESOURCE_EXHAUSTED on that ID, that call ends (signal fires); connection kept",
    async run({ peer, tracker }) {
      peer.write(requestFrame(1, "ClientStream", new Uint8Array(0), 0x02));
      peer.write(encodeFrame(1, 3, 0, new Uint8Array((4 << 20) + 1)));
      await expectStatus(peer, 1, Code.ResourceExhausted);
      await until(() => tracker.open === 0, "the handler's signal");
      await expectUsable(peer, 3);
    },
  },
  {
    name: "a header announcing 4 GiB, then silence",
    outcome: "nothing allocated for it; the server waits for the bytes; closing frees the connection",
    async run({ peer }) {
      const before = process.memoryUsage().arrayBuffers;
      const h = encodeFrame(1, 1, 0);
      new DataView(h.buffer).setUint32(0, 0xffffffff);
      peer.write(h);
      peer.write(new Uint8Array(1 << 20));
      await until(() => peer.socket.writableLength === 0, "the bytes to leave");
      expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 << 20);
      expect(peer.frames).toEqual([]);
    },
  },
  {
    name: "a client that never reads a server stream",
    outcome:
      "the handler is held by the socket (bounded output), others are served; its signal fires when the client goes",
    async run({ peer, tracker, produced, bystander }) {
      peer.socket.pause(); // stop reading: the kernel buffers fill, then the server's
      peer.write(requestFrame(1, "ServerStream", echoBytes({ count: 1_000_000_000, replySize: 64 * 1024 }), 0x01));
      await until(() => produced.n > 0, "the stream to start");
      // The handler stops being pulled once the socket is full; it is not run to a billion.
      const held = produced.n;
      // Twenty answers to another connection: the server went round its loop
      // at least that often, each time free to pull the stalled handler.
      for (let i = 0; i < 20; i++) await expectServing(bystander, `turn ${i}`);
      expect(produced.n - held).toBeLessThan(100);
      expect(tracker.open).toBe(1);
      peer.socket.destroy();
      await until(() => tracker.open === 0, "the handler's signal");
    },
  },
];

describe("catalogue of hostile inputs", () => {
  it.each(cases)("$name → $outcome", async (c) => {
    trapProcessErrors();
    const produced = { n: 0 };
    const { path, bystander, tracker } = await hostileServer({ impl: catalogueImpl(produced) });
    const peer = await RawPeer.connect(path);
    await c.run({ peer, tracker, produced, bystander });
    await expectServing(bystander);
    peer.socket.destroy();
    await until(() => tracker.open === 0, "every handler's signal");
  });

  // A server listening on an address moves each connection it accepts to a
  // socket that reads in place (adoptForDirectReads); one on a net.Server of
  // the caller's keeps the sockets that server emitted. `authorize` is handed
  // the one the server reads.
  for (const listener of ["a net.Server of the caller's", "an address"] as const) {
    it(`a flood of Requests whose answers are never read (on ${listener}): the server stops reading, keeps serving others, and answers all once read`, async () => {
      trapProcessErrors();
      const produced = { n: 0 };
      const authorized: Socket[] = [];
      const {
        server,
        bystander,
        tracker,
        path: address,
      } = await hostileServer({
        impl: catalogueImpl(produced),
        server: { authorize: (s) => void authorized.push(s as Socket) },
      });
      let path = address;
      const net = new NetServer();
      const accepted: Socket[] = [];
      net.on("connection", (s) => accepted.push(s));
      if (listener !== "an address") {
        path = join(tempDir(), "flood.sock");
        await new Promise<void>((r) => net.listen(path, r));
        await server.listen(net);
      }
      const client = new Socket();
      onTestFinished(() => {
        client.destroy();
        net.close();
      });
      await new Promise<void>((r) => client.connect({ path }, r));
      client.pause();
      const N = 20_000;
      const reply = 1024;
      const frames: Uint8Array[] = [];
      for (let i = 0; i < N; i++) frames.push(requestFrame(2 * i + 1, "Echo", echoBytes({ replySize: reply })));
      client.write(Buffer.concat(frames));
      // The bystander's connection was the first one.
      await until(() => authorized.length === 2, "the connection");
      const theirs = authorized[1]!;
      if (listener === "an address") expect(theirs.listenerCount("data")).toBe(0);
      else expect(theirs).toBe(accepted[0]);
      // The server stops taking requests while its answers pile up unread.
      await until(() => theirs.isPaused() && theirs.writableNeedDrain, "the server to stop reading");
      const handled = tracker.signals.length;
      expect(handled).toBeLessThan(N / 2);
      expect(theirs.writableLength).toBeLessThan(handled * (reply + 64) + (1 << 20));
      await expectServing(bystander);
      // Reading them all lets the server go on to the end.
      let answered = 0;
      const decoder = new FrameDecoder({ frame: () => answered++, oversized: () => {} }, 1 << 20);
      client.on("data", (c: Buffer) => decoder.push(c));
      client.resume();
      await until(() => answered === N, `all ${N} answers`, 20_000);
      client.destroy();
      await until(() => server.connectionCount === 1, "the flood connection to close");
    });
  }
});
