// A reference model of how a Go peer reads one multiplexed connection:
// containerd/nri's mux conn.Read (one whole frame per Read, ENOMEM when
// cap(buf) < frame) under Go ttrpc's channel.recv (bufio.NewReader, 4096
// bytes; io.ReadFull of the 10-byte header, then of the payload). Written from
// the Go sources (bufio.Reader.Read, pkg/net/multiplex/mux.go, ttrpc/channel.go).
//
// A stand-in, on purpose: the property tests feed it thousands of frame
// sizes and write chunkings a second, which real Go cannot be driven through
// from outside (a Go process per case, and no control of how its reads
// fall). Real Go checks the same edges in test/interop/nri/go-adaptation.test.ts
// ("carries … messages both ways", seven sizes from 4,000 bytes to 4 MiB).

const BUFIO_SIZE = 4096;

export class GoEnomem extends Error {
  override name = "GoEnomem";
}

/** Feeds mux frame payloads, in order, to a Go-like reader; returns the ttrpc frames it reads. */
export function goReadFrames(muxFrames: readonly Uint8Array[]): { length: number; payload: Uint8Array }[] {
  const queue = [...muxFrames];
  const buf = new Uint8Array(BUFIO_SIZE);
  let r = 0;
  let w = 0;
  // mux conn.Read: one whole frame into `dst` (capacity `cap`), or ENOMEM.
  const muxRead = (dst: Uint8Array, offset: number, cap: number): number => {
    const msg = queue.shift();
    if (msg === undefined) return -1; // EOF
    if (cap < msg.length) throw new GoEnomem(`frame of ${msg.length} bytes, read buffer of ${cap}`);
    dst.set(msg, offset);
    return msg.length;
  };
  // bufio.Reader.Read(p): p is out[off, off+len).
  const bufioRead = (out: Uint8Array, off: number, len: number): number => {
    if (r === w) {
      if (len >= BUFIO_SIZE) return muxRead(out, off, len); // large read: straight into p
      r = 0;
      w = 0;
      const n = muxRead(buf, 0, BUFIO_SIZE);
      if (n < 0) return -1;
      w = n;
      if (n === 0) return 0;
    }
    const n = Math.min(len, w - r);
    out.set(buf.subarray(r, r + n), off);
    r += n;
    return n;
  };
  const readFull = (len: number): Uint8Array | undefined => {
    const out = new Uint8Array(len);
    let got = 0;
    while (got < len) {
      const n = bufioRead(out, got, len - got);
      if (n < 0) {
        if (got === 0) return undefined;
        throw new Error(`unexpected EOF after ${got} of ${len} bytes`);
      }
      got += n;
    }
    return out;
  };
  const frames: { length: number; payload: Uint8Array }[] = [];
  for (;;) {
    const header = readFull(10);
    if (header === undefined) return frames;
    const length = new DataView(header.buffer).getUint32(0);
    frames.push({ length, payload: length > 0 ? readFull(length)! : new Uint8Array(0) });
  }
}

/** The mux frame payloads Go's own writer makes for one ttrpc frame (bufio.Writer, 4096, flush per frame). */
export function goWriterCuts(frameLength: number): number[] {
  const total = 10 + frameLength;
  if (total <= BUFIO_SIZE) return [total];
  return [BUFIO_SIZE, total - BUFIO_SIZE];
}
