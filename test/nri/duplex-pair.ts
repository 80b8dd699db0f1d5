import { Duplex } from "node:stream";

// In-memory ends, not a socket pair, on purpose: the multiplexer tests decide
// exactly which bytes arrive in which chunk (a frame split anywhere, frames
// coalesced), and a kernel socket would join or split the writes again. The
// multiplexer over real unix sockets runs in stub.test.ts and the NRI interop.

/**
 * Two Duplexes wired to each other as the two ends of a socket: what one
 * writes the other reads; closing one ends the other's reading (a FIN, not an error).
 */
export function duplexPair(): [Duplex, Duplex] {
  const ends: Duplex[] = [];
  const make = (other: () => Duplex) =>
    new Duplex({
      read() {},
      write(chunk, _enc, cb) {
        other().push(chunk);
        cb();
      },
      final(cb) {
        other().push(null);
        cb();
      },
      destroy(err, cb) {
        const o = other();
        if (!o.readableEnded) o.push(null);
        cb(err);
      },
    });
  ends.push(
    make(() => ends[1]!),
    make(() => ends[0]!),
  );
  return [ends[0]!, ends[1]!];
}
