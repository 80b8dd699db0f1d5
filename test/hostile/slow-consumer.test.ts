// A client that stops reading one server stream must not stall the other
// calls of its connection. The server pauses its reads while its writes are
// blocked; a writer that refills the socket on every drain must still let
// the reads between drains through (with reads in place, a pause stops the
// socket at once, where Node's own reads went on into the socket's buffer).
import { describe, expect, it, onTestFinished } from "vitest";
import { connect, type ServiceImpl } from "ttrpc-es";
import { checkLeaksAfterAll } from "../leak-check.js";
import { Interop } from "../common.js";
import { hostileServer, tameImpl } from "./helpers.js";

checkLeaksAfterAll();

const BIG = new Uint8Array(64 * 1024).fill(0x62);

// The stream handler's signal: it fires when the stream ends for the server.
let streaming: AbortSignal | undefined;
const endless: ServiceImpl<typeof Interop> = {
  ...tameImpl,
  async *serverStream(req, ctx) {
    streaming = ctx.signal;
    for (let i = 0; i < req.count && !ctx.signal.aborted; i++) yield { seq: i, payload: BIG };
  },
};

describe("a stream its client stopped reading", () => {
  it("leaves the connection's other calls served while the server goes on writing it", async () => {
    const { path } = await hostileServer({ impl: endless });
    const client = await connect(path);
    onTestFinished(() => client.close());
    const abort = new AbortController();
    // Far more than the test runs for: a starved call would wait for its end.
    const stream = client
      .serverStream(Interop.method.serverStream, { count: 1_000_000 }, { signal: abort.signal })
      [Symbol.asyncIterator]();
    expect((await stream.next()).value?.payload.length).toBe(BIG.length);
    for (let i = 0; i < 20; i++) {
      const text = `call ${i}`;
      expect((await client.unary(Interop.method.echo, { text })).text).toBe(text);
    }
    // Served while the stream went on, not once the client gave it up
    // (a full stream is failed after its grace period, which frees the writes).
    expect(streaming?.aborted).toBe(false);
    abort.abort();
    await expect(stream.next()).rejects.toThrow();
  });
});
