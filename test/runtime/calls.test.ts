import { describe, expect, it, onTestFinished, vi } from "vitest";
import { StringValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ErrorReason, OversizedMessageError, TtrpcError, type HandlerContext, type Interceptor } from "ttrpc-es";
import { Interop, drain, echoPayloadForFrame, interopImpl, startPair } from "../common.js";

describe("unary handlers, however they answer", () => {
  const cases: [string, (req: { text: string }) => unknown, string | Code][] = [
    ["returns a message", (req) => ({ text: `${req.text}!` }), "hi!"],
    ["resolves a promise", async (req) => ({ text: `${req.text}?` }), "hi?"],
    [
      "returns a thenable that is not a Promise",
      // biome-ignore lint/suspicious/noThenProperty: a thenable is what this case is about
      (req) => ({ then: (ok: (v: unknown) => void) => ok({ text: req.text }) }),
      "hi",
    ],
    [
      "throws",
      () => {
        throw new TtrpcError("no", Code.PermissionDenied);
      },
      Code.PermissionDenied,
    ],
    ["rejects", () => Promise.reject(new TtrpcError("later", Code.NotFound)), Code.NotFound],
    ["returns nothing", () => undefined, Code.Unknown],
    [
      "answers a plain Error",
      () => {
        throw new Error("boom");
      },
      Code.Unknown,
    ],
  ];
  for (const [name, echo, want] of cases) {
    it(`answers the client when the handler ${name}`, async () => {
      const { client } = await startPair({ impl: { ...interopImpl, echo: echo as never } });
      const reply = client.unary(Interop.method.echo, { text: "hi" });
      if (typeof want === "string") expect((await reply).text).toBe(want);
      else await expect(reply).rejects.toMatchObject({ code: want });
      // The connection still serves calls after each.
      expect((await client.unary(Interop.method.echoEmpty, {})).$typeName).toBe("ttrpces.interop.v1.Empty");
    });
  }
});

/**
 * Stops `performance.now()` for the rest of the test (sockets, timers and
 * nextTick stay real): a deadline a handler sees is then exactly the one sent,
 * whatever the machine's load.
 */
function frozenClock(): void {
  vi.useFakeTimers({ toFake: ["performance"] });
  onTestFinished(() => void vi.useRealTimers());
}

describe("calls, all four shapes", () => {
  it("unary echoes, with metadata and the deadline reaching the handler", async () => {
    frozenClock();
    const { client } = await startPair();
    const r = await client.unary(
      Interop.method.echo,
      { text: "hi", payload: new Uint8Array([1, 2]) },
      { metadata: { "Containerd-Namespace-Ttrpc": "k8s.io", multi: ["a", "b"] }, timeoutMs: 5000 },
    );
    expect(r.text).toBe("hi");
    expect([...r.payload]).toEqual([1, 2]);
    expect(r.metadata).toEqual(["containerd-namespace-ttrpc=k8s.io", "multi=a", "multi=b"]);
    // The clock stood still: the handler saw the whole 5 s, no less, no more.
    expect(r.deadlineMs).toBe(5000n);
  });

  it("empty messages are messages: zero-length request and response", async () => {
    const { client } = await startPair();
    expect(await client.unary(Interop.method.echoEmpty, {})).toMatchObject({ $typeName: "ttrpces.interop.v1.Empty" });
    const seqs: number[] = [];
    // count 0 would end at once; an empty request must still reach the handler.
    for await (const m of client.serverStream(Interop.method.serverStream, {})) seqs.push(m.seq);
    expect(seqs).toEqual([]);
    const got = [];
    for await (const m of client.bidiStream(Interop.method.bidi, [{}, {}, {}])) got.push(m.seq);
    expect(got).toEqual([0, 1, 2]);
  });

  it("server streaming delivers in order and ends cleanly", async () => {
    const { client } = await startPair();
    const seqs: number[] = [];
    for await (const m of client.serverStream(Interop.method.serverStream, { count: 500, text: "s" })) seqs.push(m.seq);
    expect(seqs).toEqual([...Array(500).keys()]);
  });

  it("client streaming answers once after the half-close, from sync and async iterables", async () => {
    const { client } = await startPair();
    const r = await client.clientStream(Interop.method.clientStream, [
      { payload: new Uint8Array(3) },
      { payload: new Uint8Array(4) },
    ]);
    expect(r.seq).toBe(2);
    expect(r.totalBytes).toBe(7n);
    async function* gen() {
      for (let i = 0; i < 100; i++) yield { payload: new Uint8Array(10) };
    }
    expect((await client.clientStream(Interop.method.clientStream, gen())).totalBytes).toBe(1000n);
    expect((await client.clientStream(Interop.method.clientStream, [])).seq).toBe(0);
  });

  it("bidi interleaves: each reply arrives before the next request is sent", async () => {
    const { client } = await startPair();
    const replies: string[] = [];
    let release!: () => void;
    async function* requests() {
      for (const t of ["a", "b", "c"]) {
        yield { text: t };
        await new Promise<void>((r) => (release = r));
      }
    }
    for await (const m of client.bidiStream(Interop.method.bidi, requests())) {
      replies.push(m.text);
      release();
    }
    expect(replies).toEqual(["a", "b", "c"]);
  });

  it("metadata and timeout travel on every stream Request too (unlike Go's NewStream)", async () => {
    frozenClock();
    const seen: { md: string | undefined; timeout: number | undefined }[] = [];
    const note = (ctx: HandlerContext) => seen.push({ md: ctx.metadata.get("k"), timeout: ctx.timeoutMs() });
    const { client } = await startPair({
      impl: {
        ...interopImpl,
        async *serverStream(_r, ctx) {
          note(ctx);
        },
        async clientStream(reqs, ctx) {
          note(ctx);
          for await (const _ of reqs);
          return {};
        },
        async *bidi(reqs, ctx) {
          note(ctx);
          for await (const _ of reqs);
        },
      },
    });
    const opts = { metadata: { k: "v" }, timeoutMs: 3000 };
    for await (const _ of client.serverStream(Interop.method.serverStream, {}, opts));
    await client.clientStream(Interop.method.clientStream, [], opts);
    for await (const _ of client.bidiStream(Interop.method.bidi, [], opts));
    expect(seen).toEqual([
      { md: "v", timeout: 3000 },
      { md: "v", timeout: 3000 },
      { md: "v", timeout: 3000 },
    ]);
  });

  it("many concurrent calls on one connection each get their own answer", async () => {
    const { client } = await startPair();
    const texts = Array.from({ length: 1000 }, (_, i) => `m${i}`);
    const res = await Promise.all(texts.map((text) => client.unary(Interop.method.echo, { text })));
    expect(res.map((r) => r.text)).toEqual(texts);
  });
});

describe("statuses", () => {
  it("every status code travels with its message, and details survive", async () => {
    const { client } = await startPair();
    for (let code = 1; code <= 16; code++) {
      const err = await client
        .unary(Interop.method.echo, { failCode: code, failMessage: `m${code}` })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TtrpcError);
      expect((err as TtrpcError).code).toBe(code);
      expect((err as TtrpcError).rawMessage).toBe(`m${code}`);
    }
    const err = (await client
      .unary(Interop.method.echo, { failCode: Code.FailedPrecondition, failMessage: "why", failWithDetails: true })
      .catch((e: unknown) => e)) as TtrpcError;
    expect(err.findDetails(StringValueSchema).map((d) => d.value)).toEqual(["why"]);
  });

  it("a stream can end with an error after data", async () => {
    const { client } = await startPair();
    const { messages, error } = await drain(
      client.serverStream(Interop.method.serverStream, { count: 2, failCode: Code.Aborted, failMessage: "late" }),
    );
    expect(messages.map((m) => m.seq)).toEqual([0, 1]);
    expect(error).toMatchObject({ code: Code.Aborted, rawMessage: "late" });
  });

  it("unknown service and method are UNIMPLEMENTED, as Go words them; so is a method left out of the implementation", async () => {
    const { client } = await startPair({ impl: { echo: interopImpl.echo } });
    const fake = {
      ...Interop.method.echo,
      parent: { ...Interop, typeName: "no.such.Service" },
    } as typeof Interop.method.echo;
    await expect(client.unary(fake, {})).rejects.toMatchObject({
      code: Code.Unimplemented,
      rawMessage: "service no.such.Service",
    });
    await expect(client.unary(Interop.method.echoEmpty, {})).rejects.toMatchObject({
      code: Code.Unimplemented,
      rawMessage: "method EchoEmpty",
    });
  });

  it("a handler's plain Error becomes UNKNOWN with its message", async () => {
    const { client } = await startPair({
      impl: {
        echo() {
          throw new Error("disk on fire");
        },
      },
    });
    await expect(client.unary(Interop.method.echo, {})).rejects.toMatchObject({
      code: Code.Unknown,
      rawMessage: "disk on fire",
    });
  });
});

describe("deadlines and cancellation", () => {
  it("a deadline fails the call with DEADLINE_EXCEEDED and fires the handler's signal", async () => {
    let reason: unknown;
    const aborted = new Promise<void>((resolve) => {
      void startPair({
        impl: {
          echo: (_r, ctx) =>
            new Promise((_, reject) =>
              ctx.signal.addEventListener("abort", () => {
                reason = ctx.signal.reason;
                resolve();
                reject(ctx.signal.reason);
              }),
            ),
        },
      }).then(({ client }) =>
        expect(client.unary(Interop.method.echo, {}, { timeoutMs: 50 })).rejects.toMatchObject({
          code: Code.DeadlineExceeded,
        }),
      );
    });
    await aborted;
    expect(reason).toMatchObject({ code: Code.DeadlineExceeded });
  });

  it("the server answers DEADLINE_EXCEEDED itself when the handler ignores its signal", async () => {
    const { client } = await startPair({ impl: { echo: () => new Promise(() => {}) } });
    // The client's own timer is generous; the server's (from timeout_nano) fires first... both are 50 ms,
    // so either side may win; the code is the same.
    await expect(client.unary(Interop.method.echo, {}, { timeoutMs: 50 })).rejects.toMatchObject({
      code: Code.DeadlineExceeded,
    });
  });

  it("aborting the signal cancels the call locally; the connection stays usable", async () => {
    const { client } = await startPair();
    const ac = new AbortController();
    const p = client.unary(Interop.method.echo, { delayMs: 60_000 }, { signal: ac.signal });
    ac.abort();
    await expect(p).rejects.toMatchObject({ code: Code.Canceled });
    await expect(client.unary(Interop.method.echo, {}, { signal: AbortSignal.abort() })).rejects.toMatchObject({
      code: Code.Canceled,
    });
    expect((await client.unary(Interop.method.echo, { text: "still" })).text).toBe("still");
  });

  it("breaking out of a stream cancels it and the connection goes on", async () => {
    const { client } = await startPair();
    for await (const m of client.serverStream(Interop.method.serverStream, { count: 1_000_000 })) {
      if (m.seq === 3) break;
    }
    expect((await client.unary(Interop.method.echo, { text: "ok" })).text).toBe("ok");
  });
});

describe("message size limits", () => {
  it("refuses an oversized request before writing, naming both lengths; the connection stays usable", async () => {
    const { client } = await startPair();
    const err = (await client
      .unary(Interop.method.echo, { payload: new Uint8Array(4 << 20) })
      .catch((e: unknown) => e)) as OversizedMessageError;
    expect(err).toBeInstanceOf(OversizedMessageError);
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.maximumLength).toBe(4 << 20);
    expect(err.rejectedLength).toBeGreaterThan(4 << 20);
    expect((await client.unary(Interop.method.echo, { text: "ok" })).text).toBe("ok");
  });

  it("a payload of exactly the limit passes; one byte more is RESOURCE_EXHAUSTED at the receiver, connection kept", async () => {
    // The client may send more than the server accepts: the server must skip it and fail only that call.
    const { client } = await startPair({ client: { maxMessageSize: 8 << 20 } });
    const n = echoPayloadForFrame(4 << 20);
    const exact = await client.unary(Interop.method.echo, { payload: new Uint8Array(n), replySize: 1 });
    expect(exact.payload.length).toBe(1);
    await expect(
      client.unary(Interop.method.echo, { payload: new Uint8Array(n + 1), replySize: 1 }),
    ).rejects.toMatchObject({
      code: Code.ResourceExhausted,
    });
    expect((await client.unary(Interop.method.echo, { text: "after" })).text).toBe("after");
  });

  it("a response over the server's limit becomes a RESOURCE_EXHAUSTED status, never a dropped connection", async () => {
    const { client } = await startPair();
    await expect(client.unary(Interop.method.echo, { replySize: (4 << 20) + 1 })).rejects.toMatchObject({
      code: Code.ResourceExhausted,
    });
    expect((await client.unary(Interop.method.echo, { text: "after" })).text).toBe("after");
  });

  it("a response over the client's own limit fails that call only", async () => {
    const { client } = await startPair({ client: { maxMessageSize: 1000 } });
    await expect(client.unary(Interop.method.echo, { replySize: 2000 })).rejects.toMatchObject({
      code: Code.ResourceExhausted,
    });
    expect((await client.unary(Interop.method.echo, { text: "after" })).text).toBe("after");
  });

  it("the limit is configurable on both sides", async () => {
    const { client } = await startPair({ server: { maxMessageSize: 16 << 20 }, client: { maxMessageSize: 16 << 20 } });
    const r = await client.unary(Interop.method.echo, { payload: new Uint8Array(6 << 20).fill(1) });
    expect(r.payload.length).toBe(6 << 20);
  });
});

describe("flow", () => {
  it("a stream nobody reads does not block a unary call beside it, and then fails alone", async () => {
    const { client } = await startPair({ client: { streamBufferSize: 4, streamFullGraceMs: 50 } });
    const it = client.serverStream(Interop.method.serverStream, { count: 10_000_000 })[Symbol.asyncIterator]();
    const first = await it.next();
    expect(first.value?.seq).toBe(0);
    for (let i = 0; i < 20; i++)
      expect((await client.unary(Interop.method.echo, { text: `u${i}` })).text).toBe(`u${i}`);
    // Reading on drains what was queued, then the stream's failure shows.
    const err = await (async () => {
      for (;;) if ((await it.next()).done) return undefined;
    })().catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: Code.ResourceExhausted,
      rawMessage: "ttrpc: stream buffer full",
      reason: ErrorReason.StreamFull,
    });
    expect((await client.unary(Interop.method.echo, { text: "after" })).text).toBe("after");
  });

  it("client streaming waits for the socket instead of buffering without bound", async () => {
    const { client } = await startPair();
    let produced = 0;
    async function* big() {
      for (let i = 0; i < 200; i++) {
        produced++;
        yield { payload: new Uint8Array(256 * 1024) };
      }
    }
    const r = await client.clientStream(Interop.method.clientStream, big());
    expect(produced).toBe(200);
    expect(r.totalBytes).toBe(200n * 256n * 1024n);
  });
});

describe("interceptors", () => {
  it("run on client and server for unary and streams, first outermost, and may edit metadata", async () => {
    const log: string[] = [];
    const tag =
      (name: string): Interceptor =>
      (next) =>
      async (req) => {
        log.push(`${name}>${req.method.name}:${req.stream ? "stream" : "unary"}`);
        if (name === "c1") req.metadata.set("traceparent", "00-abc");
        const res = await next(req);
        log.push(`${name}<`);
        return res;
      };
    const { client } = await startPair({
      client: { interceptors: [tag("c1"), tag("c2")] },
      server: { interceptors: [tag("s1")] },
    });
    const r = await client.unary(Interop.method.echo, {});
    expect(r.metadata).toEqual(["traceparent=00-abc"]);
    for await (const _ of client.serverStream(Interop.method.serverStream, { count: 1 }));
    expect(log.slice(0, 6)).toEqual(["c1>Echo:unary", "c2>Echo:unary", "s1>Echo:unary", "s1<", "c2<", "c1<"]);
    // A streaming interceptor returns once the stream is open, before the
    // server has seen it: the two sides' orders are separate.
    const streamLog = log.slice(6);
    expect(streamLog.filter((l) => l.startsWith("c"))).toEqual([
      "c1>ServerStream:stream",
      "c2>ServerStream:stream",
      "c2<",
      "c1<",
    ]);
    expect(streamLog.filter((l) => l.startsWith("s"))).toEqual(["s1>ServerStream:stream", "s1<"]);
  });

  it("a server interceptor can refuse a call with a status", async () => {
    const deny: Interceptor = (next) => async (req) => {
      if (req.metadata.get("token") !== "s3cret") throw new TtrpcError("no token", Code.Unauthenticated);
      return next(req);
    };
    const { client } = await startPair({ server: { interceptors: [deny] } });
    await expect(client.unary(Interop.method.echo, {})).rejects.toMatchObject({ code: Code.Unauthenticated });
    expect((await client.unary(Interop.method.echo, { text: "in" }, { metadata: { token: "s3cret" } })).text).toBe(
      "in",
    );
  });
});

describe("interceptors see failures that happen after the handler returned", () => {
  // What a tracing interceptor records: how the chain it awaited ended.
  function recorder() {
    const seen: (number | "ok")[] = [];
    const record: Interceptor = (next) => async (req) => {
      try {
        const res = await next(req);
        seen.push("ok");
        return res;
      } catch (e) {
        seen.push(TtrpcError.from(e).code);
        throw e;
      }
    };
    return { seen, record };
  }

  it("a unary handler returning nothing: the interceptor and the client see the same status", async () => {
    const { seen, record } = recorder();
    const { client } = await startPair({
      server: { interceptors: [record] },
      impl: { ...interopImpl, echo: () => undefined as never },
    });
    await expect(client.unary(Interop.method.echo, {})).rejects.toMatchObject({ code: Code.Unknown });
    expect(seen).toEqual([Code.Unknown]);
  });

  it("a unary response over the server's limit: the interceptor sees RESOURCE_EXHAUSTED as the client does", async () => {
    const { seen, record } = recorder();
    const { client } = await startPair({ server: { interceptors: [record], maxMessageSize: 1000 } });
    await expect(client.unary(Interop.method.echo, { replySize: 5000 })).rejects.toMatchObject({
      code: Code.ResourceExhausted,
    });
    expect((await client.unary(Interop.method.echo, { text: "small" })).text).toBe("small");
    expect(seen).toEqual([Code.ResourceExhausted, "ok"]);
  });

  it("an interceptor that replaces the response gets its own message sent", async () => {
    const replace: Interceptor = (next) => async (req) => {
      const res = await next(req);
      return { ...res, message: { text: "replaced" } } as typeof res;
    };
    const { client } = await startPair({ server: { interceptors: [replace] } });
    expect((await client.unary(Interop.method.echo, { text: "orig" })).text).toBe("replaced");
  });

  it("a client-streaming handler returning nothing fails the messages an interceptor observes", async () => {
    const seen: unknown[] = [];
    const observe: Interceptor = (next) => async (req) => {
      const res = await next(req);
      if (!res.stream) return res;
      const inner = res.messages;
      return {
        stream: true,
        messages: (async function* () {
          try {
            yield* inner;
          } catch (e) {
            seen.push(TtrpcError.from(e).code);
            throw e;
          }
        })(),
      };
    };
    const { client } = await startPair({
      server: { interceptors: [observe] },
      impl: { ...interopImpl, clientStream: async () => undefined as never },
    });
    await expect(client.clientStream(Interop.method.clientStream, [{}])).rejects.toMatchObject({ code: Code.Unknown });
    expect(seen).toEqual([Code.Unknown]);
  });
});

describe("client-stream input", () => {
  it("an error thrown by the caller's own input is what the call rejects with", async () => {
    const { client } = await startPair();
    const bad = new Error("bad input");
    async function* input() {
      yield {};
      throw bad;
    }
    await expect(client.clientStream(Interop.method.clientStream, input())).rejects.toBe(bad);
    expect((await client.unary(Interop.method.echo, { text: "after" })).text).toBe("after");
  });
});

/** Emits a warning of its own and resolves when it is delivered. */
function warningMarker(): Promise<void> {
  return new Promise((resolve) => {
    const onWarning = (w: Error) => {
      if (w.name !== "TtrpcEsTestMarker") return;
      process.off("warning", onWarning);
      resolve();
    };
    process.on("warning", onWarning);
    process.emitWarning("every earlier warning has been delivered", "TtrpcEsTestMarker");
  });
}

describe("a signal shared by many calls", () => {
  it("cancels them all, and Node sees one listener, not one per call", async () => {
    const { client } = await startPair();
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on("warning", onWarning);
    try {
      const ac = new AbortController();
      const calls = Array.from({ length: 50 }, () =>
        client.unary(Interop.method.echo, { delayMs: 60_000 }, { signal: ac.signal }),
      );
      const done = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          client.unary(Interop.method.echo, { text: `${i}` }, { signal: ac.signal }),
        ),
      );
      expect(done.map((r) => r.text)).toEqual(Array.from({ length: 20 }, (_, i) => `${i}`));
      ac.abort();
      for (const c of calls) await expect(c).rejects.toMatchObject({ code: Code.Canceled });
      // Warnings are emitted on a later tick, in order: once a warning of our
      // own, emitted now, has arrived, any the calls caused has arrived before it.
      await warningMarker();
      expect(warnings.filter((w) => w.name === "MaxListenersExceededWarning")).toEqual([]);
    } finally {
      process.off("warning", onWarning);
    }
  });
});
