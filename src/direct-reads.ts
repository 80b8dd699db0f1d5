/** Who the reads of a socket go to: where each lands, and what to do once it has. */
export interface ReadTarget {
  /** The buffer the next read lands in. */
  target(): Uint8Array;
  /** `n` bytes landed in the buffer `target()` returned last. */
  filled(n: number): void;
}

const EARLY_BYTES = 64 * 1024;

/**
 * The reads of a socket dialed with net.Socket's `onread` option: the kernel
 * copies each read straight into the buffer the reader names, so a big
 * payload lands where it will stay, and no 64 KiB buffer is allocated per
 * read for the GC to collect. The socket is made before its reader: bytes
 * read until {@link bind} are held and handed over then. Node offers this
 * only on sockets it dials, not on accepted ones.
 */
export class DirectReads {
  #reader: ReadTarget | undefined;
  #early: ((chunk: Uint8Array) => void) | undefined;
  // Reads before bind() land here; the socket may hold it for one more read after.
  #scratch: Uint8Array | undefined;
  #held: Uint8Array[] = [];

  /** Pass as the socket's `onread` option. */
  readonly onread = {
    buffer: (): Uint8Array => {
      if (this.#reader !== undefined) return this.#reader.target();
      this.#scratch ??= Buffer.allocUnsafe(EARLY_BYTES);
      return this.#scratch;
    },
    // Node hands back the buffer it read into: the scratch one means a read from before bind().
    callback: (n: number, buf: Uint8Array): boolean => {
      if (buf !== this.#scratch) this.#reader!.filled(n);
      else if (this.#early !== undefined)
        this.#early(buf.subarray(0, n)); // never read into again
      else this.#held.push(Uint8Array.prototype.slice.call(buf, 0, n));
      return true;
    },
  };

  /** From now on reads go to `reader`; `early` gets what was read before, in order. */
  bind(reader: ReadTarget, early: (chunk: Uint8Array) => void): void {
    this.#reader = reader;
    this.#early = early;
    const held = this.#held;
    this.#held = [];
    for (const chunk of held) early(chunk);
  }
}
