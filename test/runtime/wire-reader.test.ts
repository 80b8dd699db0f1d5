// The hand-coded envelope's protobuf reader on its own: each malformed input
// is refused with its own reason (envelope.test.ts and the property tests
// check the envelope built on it).
import { describe, expect, it } from "vitest";
import { Reader, wireTypeIs } from "../../src/wire-reader.js";

const reader = (...bytes: number[]) => new Reader(Uint8Array.from(bytes));
const START_1 = (1 << 3) | 3;
const END_1 = (1 << 3) | 4;

/** `levels` groups of field 1 nested in each other, the reader past the outermost start tag. */
function nestedGroups(levels: number): Reader {
  const bytes = [...Array(levels - 1).fill(START_1), ...Array(levels).fill(END_1)];
  return reader(...bytes);
}

describe("Reader.varint", () => {
  it("reads one to ten bytes", () => {
    expect(reader(0).varint()).toBe(0);
    expect(reader(0x96, 0x01).varint()).toBe(150);
    const r = reader(0xff, 0xff, 0xff, 0xff, 0x0f, 0x2a);
    expect(r.varint()).toBe(0xffffffff);
    expect(r.pos).toBe(5);
    // 2^63: the tenth byte may be 1.
    expect(reader(...Array(9).fill(0x80), 0x01).varint()).toBe(2 ** 63);
  });

  it("refuses a truncated varint and one over 64 bits", () => {
    expect(() => reader().varint()).toThrow(/^truncated varint$/);
    expect(() => reader(0x80).varint()).toThrow(/^truncated varint$/);
    expect(() => reader(...Array(9).fill(0x80), 0x02).varint()).toThrow(/^varint overflows 64 bits$/);
  });
});

describe("Reader.int32", () => {
  it("keeps the low 32 bits, signed", () => {
    expect(reader(0x96, 0x01).int32()).toBe(150);
    // -1, sign-extended to ten bytes as Go writes a negative int32.
    expect(reader(...Array(9).fill(0xff), 0x01).int32()).toBe(-1);
    expect(reader(0xff, 0xff, 0xff, 0xff, 0x07).int32()).toBe(0x7fffffff);
    // 2^35: nothing in the low 32 bits.
    expect(reader(0x80, 0x80, 0x80, 0x80, 0x80, 0x01).int32()).toBe(0);
  });

  it("refuses a truncated varint, and one over ten bytes without moving", () => {
    expect(() => reader(0x80).int32()).toThrow(/^truncated varint$/);
    const r = reader(...Array(10).fill(0x80), 0x00);
    expect(() => r.int32()).toThrow(/^varint too long$/);
    expect(r.pos).toBe(0);
  });
});

describe("Reader.bytes and string", () => {
  it("reads a length-delimited field without copying", () => {
    const r = reader(3, 1, 2, 3, 9);
    const b = r.bytes();
    expect([...b]).toEqual([1, 2, 3]);
    expect(b.buffer).toBe(r.buf.buffer);
    expect(r.pos).toBe(4);
  });

  it("refuses a field longer than what is left, and a string that is not UTF-8", () => {
    expect(() => reader(4, 1, 2, 3).bytes()).toThrow(/^truncated length-delimited field$/);
    expect(reader(2, 0x68, 0x69).string()).toBe("hi");
    expect(() => reader(1, 0xff).string()).toThrow(TypeError);
  });
});

describe("Reader.skip", () => {
  it("skips every wire type", () => {
    const r = reader(0x80, 0x01, ...Array(8).fill(0), 7, 7, 7, 7, 2, 1, 2, 0x99);
    r.skip(0);
    expect(r.pos).toBe(2);
    r.skip(1);
    expect(r.pos).toBe(10);
    r.skip(5);
    expect(r.pos).toBe(14);
    r.skip(2);
    expect(r.pos).toBe(r.buf.length - 1);
  });

  it("skips a group, with fields and groups inside, up to its own end tag", () => {
    // field 2 varint, field 3 group (empty), end of group 1, then one more byte.
    const r = reader(0x10, 0x05, (3 << 3) | 3, (3 << 3) | 4, END_1, 0x99);
    r.skip(3, 1);
    expect(r.pos).toBe(5);
  });

  it("takes groups 65 deep and refuses 66", () => {
    const ok = nestedGroups(65);
    ok.skip(3, 1);
    expect(ok.done).toBe(true);
    expect(() => nestedGroups(66).skip(3, 1)).toThrow(/^groups nested too deep$/);
  });

  it("refuses a truncated group, a mismatched end, a short fixed field and wire types 6 and 7", () => {
    expect(() => reader(0x10, 0x05).skip(3, 1)).toThrow(/^truncated group$/);
    expect(() => reader((2 << 3) | 4).skip(3, 1)).toThrow(/^mismatched end group$/);
    expect(() => reader(1, 2, 3).skip(5)).toThrow(/^truncated fixed-size field$/);
    expect(() => reader(1, 2, 3, 4, 5, 6, 7).skip(1)).toThrow(/^truncated fixed-size field$/);
    expect(() => reader().skip(6)).toThrow(/^unsupported wire type 6$/);
    expect(() => reader().skip(7)).toThrow(/^unsupported wire type 7$/);
  });
});

describe("Reader.tag and wireTypeIs", () => {
  it("splits a tag and refuses field number 0", () => {
    expect(reader((5 << 3) | 2).tag()).toEqual([5, 2]);
    expect(() => reader(0x02).tag()).toThrow(/^invalid field number 0$/);
  });

  it("skips a known field sent with another wire type", () => {
    const r = reader(0x96, 0x01, 0x2a);
    expect(wireTypeIs(r, 1, 2, 2)).toBe(true);
    expect(r.pos).toBe(0);
    expect(wireTypeIs(r, 1, 0, 2)).toBe(false);
    expect(r.pos).toBe(2);
  });
});
