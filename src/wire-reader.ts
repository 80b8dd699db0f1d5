// Fatal, as protobuf (Go included) refuses a proto3 string that is not UTF-8.
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

/** Reads protobuf's wire format field by field; every method throws on malformed input. */
export class Reader {
  pos = 0;
  constructor(readonly buf: Uint8Array) {}

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  varint(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.buf.length) throw new Error("truncated varint");
      const b = this.buf[this.pos++]!;
      // Every group counts (above 2^53 the value is approximate); a tenth
      // byte over 1 overflows 64 bits, which protobuf refuses.
      if (i === 9 && b > 1) throw new Error("varint overflows 64 bits");
      result += (b & 0x7f) * mul;
      mul *= 128;
      if (b < 0x80) return result;
    }
    throw new Error("varint too long");
  }

  // int32 fields: the low 32 bits, signed (negatives arrive sign-extended).
  int32(): number {
    const start = this.pos;
    let lo = 0;
    let shift = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.buf.length) throw new Error("truncated varint");
      const b = this.buf[this.pos++]!;
      if (shift < 32) lo |= (b & 0x7f) << shift;
      shift += 7;
      if (b < 0x80) return lo | 0;
    }
    this.pos = start;
    throw new Error("varint too long");
  }

  bytes(): Uint8Array {
    const len = this.varint();
    const end = this.pos + len;
    if (end > this.buf.length) throw new Error("truncated length-delimited field");
    const out = this.buf.subarray(this.pos, end);
    this.pos = end;
    return out;
  }

  string(): string {
    return utf8Decoder.decode(this.bytes());
  }

  // Skips a field, groups (wire types 3/4) included, as protobuf does for unknown fields.
  skip(wireType: number, field = 0, depth = 0): void {
    switch (wireType) {
      case 0:
        this.varint();
        return;
      case 1:
        this.pos += 8;
        break;
      case 2:
        this.bytes();
        return;
      case 3:
        if (depth > 64) throw new Error("groups nested too deep");
        for (;;) {
          if (this.done) throw new Error("truncated group");
          const [f, wt] = this.tag();
          if (wt === 4) {
            if (f !== field) throw new Error("mismatched end group");
            return;
          }
          this.skip(wt, f, depth + 1);
        }
      case 5:
        this.pos += 4;
        break;
      default:
        throw new Error(`unsupported wire type ${wireType}`);
    }
    if (this.pos > this.buf.length) throw new Error("truncated fixed-size field");
  }

  tag(): [field: number, wireType: number] {
    const t = this.varint();
    const field = Math.floor(t / 8);
    if (field === 0) throw new Error("invalid field number 0");
    return [field, t & 7];
  }
}

// A known field sent with another wire type is skipped as an unknown one, as
// Go's protobuf does; true when the field is to be read.
export function wireTypeIs(r: Reader, field: number, wt: number, want: number): boolean {
  if (wt === want) return true;
  r.skip(wt, field);
  return false;
}
