import { describe, expect, it } from "vitest";
import { DirectReads } from "../../src/direct-reads.js";

// Drives `onread` in the order Node does: a buffer is asked for before each
// read (the first when the socket connects), the callback follows the read.
function read(reads: DirectReads, bytes: number[]): void {
  const target = reads.onread.buffer();
  target.set(bytes);
  reads.onread.callback(bytes.length, target);
}

describe("DirectReads", () => {
  it("holds what is read before a reader is bound and hands it over in order, then reads into the reader", () => {
    const reads = new DirectReads();
    read(reads, [1, 2]);
    read(reads, [3]);
    const early: number[][] = [];
    const target = new Uint8Array(4);
    const filled: number[] = [];
    reads.bind({ target: () => target, filled: (n) => filled.push(n) }, (c) => early.push([...c]));
    expect(early).toEqual([[1, 2], [3]]);
    read(reads, [4, 5, 6]);
    expect(filled).toEqual([3]);
    expect([...target.subarray(0, 3)]).toEqual([4, 5, 6]);
  });

  it("a read into the buffer handed out before bind still goes to the early handler", () => {
    const reads = new DirectReads();
    const pending = reads.onread.buffer(); // the socket holds this one for its next read
    const early: number[][] = [];
    const filled: number[] = [];
    reads.bind({ target: () => new Uint8Array(8), filled: (n) => filled.push(n) }, (c) => early.push([...c]));
    pending.set([7, 8]);
    reads.onread.callback(2, pending);
    expect(early).toEqual([[7, 8]]);
    expect(filled).toEqual([]);
  });
});
