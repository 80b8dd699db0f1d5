// Deadlines of any length (issue 17): Node's timers overflow at 2^31-1 ms and
// then fire after 1 ms. Client and server honour longer ones exactly, with no
// timer left behind. Fake timers (setTimeout/clearTimeout only; sockets and
// nextTick stay real) stand in for weeks of waiting.
import { Server as NetServer } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { fromBinary } from "@bufbuild/protobuf";
import { Code, FrameDecoder, MessageType, connect, encodeFrame, type Interceptor } from "ttrpc-es";
import { RequestSchema, ResponseSchema } from "../../gen/ttrpc/request_pb.js";
import {
  CallDeadline,
  LongTimer,
  callSignal,
  receivedTimeoutNano,
  requestTimeoutNano,
  timeoutNano,
  watchAbort,
} from "../../src/deadline.js";
import type { TtrpcError } from "../../src/ttrpc-error.js";
import { EchoRequestSchema } from "../../gen/ttrpces/interop/v1/interop_pb.js";
import { Interop, RawPeer, fakeTimeouts, interopImpl, startPair, tempDir } from "../common.js";
import { parked } from "./parked.js";
import { create, toBinary } from "@bufbuild/protobuf";

const MAX_TIMER = 2 ** 31 - 1;

afterEach(() => {
  vi.useRealTimers();
});

describe("LongTimer", () => {
  it("fires exactly after a delay of several timer lengths, not before", () => {
    fakeTimeouts();
    let fired = 0;
    const ms = 3 * MAX_TIMER + 7;
    new LongTimer(() => fired++, ms);
    vi.advanceTimersByTime(ms - 1);
    expect(fired).toBe(0);
    vi.advanceTimersByTime(1);
    expect(fired).toBe(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("leaves no timer once cleared, in any step; Infinity never arms one", () => {
    fakeTimeouts();
    const t = new LongTimer(() => {}, 2 * MAX_TIMER);
    vi.advanceTimersByTime(MAX_TIMER + 1);
    expect(vi.getTimerCount()).toBe(1);
    t.clear();
    expect(vi.getTimerCount()).toBe(0);
    new LongTimer(() => {}, Infinity);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("timeout_nano stays a positive int64 for any length", () => {
    expect(timeoutNano(1e-9)).toBe(1);
    expect(timeoutNano(MAX_TIMER + 1)).toBe((MAX_TIMER + 1) * 1e6);
    expect(BigInt(timeoutNano(1e20))).toBeLessThan(2n ** 63n);
    expect(timeoutNano(1e20)).toBeGreaterThan(9e18);
  });
});

/** A peer that reads Requests (their timeout_nano in `requests`) and never answers. */
async function silentPeer(): Promise<{ path: string; requests: bigint[]; arrived: Promise<void>; peer: NetServer }> {
  const requests: bigint[] = [];
  let received!: () => void;
  const arrived = new Promise<void>((r) => (received = r));
  const path = join(tempDir(), "silent.sock");
  const peer = new NetServer((s) => {
    const d = new FrameDecoder(
      {
        frame: (f) => {
          requests.push(fromBinary(RequestSchema, f.payload).timeoutNano);
          received();
        },
        oversized: () => {},
      },
      1 << 20,
    );
    s.on("data", (c: Buffer) => d.push(c));
    s.on("error", () => {});
  });
  await new Promise<void>((r) => peer.listen(path, r));
  return { path, requests, arrived, peer };
}

describe("the client", () => {
  it("sends a deadline past 2^31-1 ms as it is, and fails the call only when it passes", async () => {
    const { path, requests, arrived, peer } = await silentPeer();
    let signal: AbortSignal | undefined;
    const capture: Interceptor = (next) => (req) => {
      signal = req.signal;
      return next(req);
    };
    const client = await connect(`unix://${path}`, { interceptors: [capture] });
    fakeTimeouts();
    const ms = MAX_TIMER + 5000;
    const call = client.unary(Interop.method.echo, {}, { timeoutMs: ms }).catch((e: unknown) => e);
    vi.advanceTimersByTime(MAX_TIMER);
    expect(signal?.aborted).toBe(false);
    vi.advanceTimersByTime(4999);
    expect(signal?.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    expect(signal?.aborted).toBe(true);
    expect(await call).toMatchObject({ code: Code.DeadlineExceeded });
    expect(vi.getTimerCount()).toBe(0);
    vi.useRealTimers();
    await arrived;
    expect(requests).toEqual([BigInt(ms) * 1_000_000n]);
    client.close();
    await client.done;
    await new Promise<void>((r) => peer.close(() => r()));
  });

  it.each([
    ["raises", 1000, 5000],
    ["lowers", 60_000, 300],
    ["sets", undefined, 700],
  ] as const)(
    "follows an interceptor that %s timeoutMs, on the wire and in its own timer",
    async (_, asked, changed) => {
      const { path, requests, arrived, peer } = await silentPeer();
      let signal: AbortSignal | undefined;
      const retime: Interceptor = (next) => (req) => {
        signal = req.signal;
        return next({ ...req, timeoutMs: changed });
      };
      const client = await connect(`unix://${path}`, { interceptors: [retime] });
      fakeTimeouts();
      const options = asked === undefined ? {} : { timeoutMs: asked };
      const call = client.unary(Interop.method.echo, {}, options).catch((e: unknown) => e);
      vi.advanceTimersByTime(changed - 1);
      expect(signal?.aborted).toBe(false);
      vi.advanceTimersByTime(1);
      expect(signal?.aborted).toBe(true);
      // The client's own timer ended the call (the peer never answers): its words, not a server's.
      expect(await call).toMatchObject({ code: Code.DeadlineExceeded, rawMessage: "ttrpc: deadline exceeded" });
      expect(vi.getTimerCount()).toBe(0);
      vi.useRealTimers();
      await arrived;
      expect(requests).toEqual([BigInt(changed) * 1_000_000n]);
      client.close();
      await client.done;
      await new Promise<void>((r) => peer.close(() => r()));
    },
  );

  it("leaves no timer behind when a call with a long deadline succeeds", async () => {
    const { client } = await startPair();
    fakeTimeouts();
    expect((await client.unary(Interop.method.echo, { text: "x" }, { timeoutMs: 10 * MAX_TIMER })).text).toBe("x");
    expect(vi.getTimerCount()).toBe(0);
  });

  it("leaves no timer behind when an intercepted unary call with a deadline succeeds", async () => {
    const passThrough: Interceptor = (next) => (req) => next(req);
    const { client } = await startPair({ client: { interceptors: [passThrough] } });
    fakeTimeouts();
    expect((await client.unary(Interop.method.echo, { text: "x" }, { timeoutMs: 10 * MAX_TIMER })).text).toBe("x");
    expect(vi.getTimerCount()).toBe(0);
  });

  it("leaves no timer behind when streams with a deadline finish, or are abandoned", async () => {
    const { client } = await startPair();
    fakeTimeouts();
    const timeoutMs = 10 * MAX_TIMER;
    const seqs: number[] = [];
    for await (const r of client.serverStream(Interop.method.serverStream, { count: 2 }, { timeoutMs })) {
      seqs.push(r.seq);
    }
    expect(seqs).toEqual([0, 1]);
    expect(vi.getTimerCount()).toBe(0);
    const sent = await client.clientStream(Interop.method.clientStream, [{}, {}], { timeoutMs });
    expect(sent.seq).toBe(2);
    expect(vi.getTimerCount()).toBe(0);
    for await (const r of client.bidiStream(Interop.method.bidi, [{ text: "a" }], { timeoutMs })) {
      expect(r.text).toBe("a");
    }
    expect(vi.getTimerCount()).toBe(0);
    // A consumer that stops early: its deadline goes with it.
    for await (const r of client.serverStream(Interop.method.serverStream, { count: 5 }, { timeoutMs })) {
      expect(r.seq).toBe(0);
      break;
    }
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe("the server", () => {
  it("cancels a handler when a timeout_nano past 2^31-1 ms passes, not before, and answers DEADLINE_EXCEEDED", async () => {
    const { handler, running } = parked();
    const { dir } = await startPair({ impl: { ...interopImpl, echo: handler } });
    const peer = await RawPeer.connect(join(dir, "ttrpc.sock"));
    fakeTimeouts();
    const ms = 2 * MAX_TIMER + 10;
    const payload = toBinary(EchoRequestSchema, create(EchoRequestSchema, {}));
    const req = create(RequestSchema, {
      service: Interop.typeName,
      method: "Echo",
      payload,
      timeoutNano: BigInt(ms) * 1_000_000n,
    });
    peer.write(encodeFrame(1, MessageType.Request, 0, toBinary(RequestSchema, req)));
    const ctx = await running;
    expect(ctx.timeoutMs()).toBeGreaterThan(MAX_TIMER);
    vi.advanceTimersByTime(ms - 1);
    expect(ctx.signal.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    expect(ctx.signal.aborted).toBe(true);
    expect(ctx.signal.reason).toMatchObject({ code: Code.DeadlineExceeded });
    expect(vi.getTimerCount()).toBe(0);
    vi.useRealTimers();
    const [res] = await peer.waitFrames(1);
    expect(res?.streamId).toBe(1);
    expect(fromBinary(ResponseSchema, res!.payload).status).toMatchObject({
      code: Code.DeadlineExceeded,
      message: "context deadline exceeded",
    });
  });
});

describe("a call's signal (callSignal, CallDeadline, watchAbort)", () => {
  it("timeout_nano of a Request: none for no timeout and for Infinity", () => {
    expect(requestTimeoutNano(undefined)).toBe(0);
    expect(requestTimeoutNano(Infinity)).toBe(0);
    expect(requestTimeoutNano(5)).toBe(5_000_000);
  });

  it("a received ten-byte timeout_nano ending in 1 is a negative int64: expired", () => {
    expect(receivedTimeoutNano(123, 10, 1)).toBe(-1);
    expect(receivedTimeoutNano(123, 10, 0)).toBe(123);
    expect(receivedTimeoutNano(123, 9, 1)).toBe(123);
  });

  it("a call with neither signal nor timeout shares one signal that never aborts", () => {
    const a = callSignal(undefined, undefined);
    expect(callSignal(undefined, undefined).signal).toBe(a.signal);
    expect(a.signal.aborted).toBe(false);
  });

  it("a timeout alone aborts with DEADLINE_EXCEEDED when it passes", () => {
    fakeTimeouts();
    const { signal, cleanup } = callSignal(undefined, 50);
    vi.advanceTimersByTime(49);
    expect(signal.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    expect((signal.reason as TtrpcError).code).toBe(Code.DeadlineExceeded);
    cleanup();
  });

  it("the caller's abort becomes CANCELLED with its reason as the cause, even when aborted already", () => {
    const ac = new AbortController();
    const live = new CallDeadline(ac.signal, undefined);
    ac.abort("why");
    const early = new CallDeadline(ac.signal, undefined);
    for (const d of [live, early]) {
      const e = d.signal.reason as TtrpcError;
      expect([e.code, e.rawMessage, e.cause]).toEqual([Code.Canceled, "ttrpc: call cancelled", "why"]);
    }
  });

  it("after cleanup neither the caller's abort nor the timer reaches the call", () => {
    fakeTimeouts();
    const ac = new AbortController();
    const d = new CallDeadline(ac.signal, 50);
    d.cleanup();
    ac.abort();
    vi.advanceTimersByTime(100);
    expect(d.signal.aborted).toBe(false);
  });

  it("arm: the same timeout keeps the running timer, another restarts it, 0 or less expires now", () => {
    fakeTimeouts();
    const d = new CallDeadline(undefined, 100);
    vi.advanceTimersByTime(60);
    d.arm(100);
    vi.advanceTimersByTime(40);
    expect(d.signal.aborted).toBe(true);

    const e = new CallDeadline(undefined, 100);
    vi.advanceTimersByTime(60);
    e.arm(50);
    vi.advanceTimersByTime(49);
    expect(e.signal.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    expect(e.signal.aborted).toBe(true);

    const f = new CallDeadline(undefined, undefined);
    f.arm(0);
    expect((f.signal.reason as TtrpcError).code).toBe(Code.DeadlineExceeded);
  });

  it("watchAbort listens once per signal however many calls share it", () => {
    const ac = new AbortController();
    const add = vi.spyOn(ac.signal, "addEventListener");
    const seen: number[] = [];
    watchAbort(ac.signal, () => seen.push(1));
    const stop = watchAbort(ac.signal, () => seen.push(2));
    watchAbort(ac.signal, () => seen.push(3));
    stop();
    expect(add).toHaveBeenCalledTimes(1);
    ac.abort();
    expect(seen).toEqual([1, 3]);
  });
});
