// Differential fuzz of the hand-coded envelope decoder against protobuf-es:
// for any bytes, both accept or both refuse, and what they accept is the same
// Request. Known fields are generated with their own wire type: for a known
// field sent with another one, protobuf-es fails (or reads it packed) where
// Go's protobuf skips it as unknown; we follow Go, checked case by case below.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fromBinary } from "@bufbuild/protobuf";
import { decodeRequest } from "../../src/envelope.js";
import { RequestSchema } from "../../gen/ttrpc/request_pb.js";
import { checkLeaksAfterAll } from "../leak-check.js";
import { assertMost, fuzzParams, fuzzTimeout } from "./fuzz-config.js";

checkLeaksAfterAll();

function varint(n: bigint): number[] {
  const out: number[] = [];
  while (n >= 128n) {
    out.push(Number(n & 0x7fn) | 0x80);
    n >>= 7n;
  }
  out.push(Number(n));
  return out;
}

interface Field {
  no: number;
  wt: number;
  n: bigint;
  v: Uint8Array;
  nested: Field[];
}

// Wire types of the known fields: ttrpc.Request, and KeyValue inside field 5.
const REQUEST: Record<number, number> = { 1: 2, 2: 2, 3: 2, 4: 0, 5: 2 };
const KEY_VALUE: Record<number, number> = { 1: 2, 2: 2 };

function encodeFields(fields: Field[], known: Record<number, number> = REQUEST): Uint8Array {
  const out: number[] = [];
  for (const field of fields) {
    const wt = known[field.no] ?? field.wt;
    // A group's number must not be a known field's.
    const f = { ...field, wt, no: wt === 3 && known[field.no] !== undefined ? field.no + 10 : field.no };
    out.push(...varint((BigInt(f.no) << 3n) | BigInt(f.wt)));
    switch (f.wt) {
      case 0:
        out.push(...varint(f.n));
        break;
      case 1:
        out.push(...[...f.v, 0, 0, 0, 0, 0, 0, 0, 0].slice(0, 8));
        break;
      case 2: {
        const body =
          known === REQUEST && f.no === 5
            ? encodeFields(f.nested, KEY_VALUE)
            : known[f.no] !== undefined || f.nested.length === 0
              ? f.v
              : encodeFields(f.nested, {});
        out.push(...varint(BigInt(body.length)), ...body);
        break;
      }
      case 3:
        // A group: its fields, then the matching end-group tag.
        out.push(...encodeFields(f.nested, {}), ...varint((BigInt(f.no) << 3n) | 4n));
        break;
      case 5:
        out.push(...[...f.v, 0, 0, 0, 0].slice(0, 4));
        break;
      default:
        out.push(...f.v);
    }
  }
  return Uint8Array.from(out);
}

const leaf = fc.record({
  no: fc.oneof(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 2 ** 29 - 1 })),
  wt: fc.oneof({ weight: 6, arbitrary: fc.constantFrom(0, 1, 2, 5) }, fc.integer({ min: 0, max: 7 })),
  n: fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 20n }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })),
  v: fc.oneof(
    fc.string({ maxLength: 8 }).map((s) => new TextEncoder().encode(s)),
    fc.uint8Array({ maxLength: 10 }),
  ),
  nested: fc.constant([] as Field[]),
});
const field: fc.Arbitrary<Field> = fc.oneof(
  { weight: 4, arbitrary: leaf },
  fc.record({
    no: fc.integer({ min: 1, max: 6 }),
    wt: fc.constantFrom(2, 3),
    n: fc.constant(0n),
    v: fc.constant(new Uint8Array(0)),
    nested: fc.array(leaf, { maxLength: 4 }),
  }),
);
const message = fc.array(field, { maxLength: 8 }).map((fs) => encodeFields(fs));
/** Anything: well-formed fields followed by junk. */
const junk = fc.tuple(message, fc.uint8Array({ maxLength: 12 })).map(([a, b]) => Uint8Array.from([...a, ...b]));

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("envelope decoder against protobuf-es", { timeout: fuzzTimeout(10_000) }, () => {
  it("accepts and refuses the same bytes, and decodes the same Request", () => {
    assertMost(
      fc.check(
        fc.property(message, (bytes) => {
          let ours: ReturnType<typeof decodeRequest> | Error;
          let ref: ReturnType<typeof fromBinary<typeof RequestSchema>> | Error;
          try {
            ours = decodeRequest(bytes);
          } catch (e) {
            ours = e as Error;
          }
          try {
            ref = fromBinary(RequestSchema, bytes);
          } catch (e) {
            ref = e as Error;
          }
          expect(
            ours instanceof Error,
            `ours: ${String(ours instanceof Error ? ours.message : "ok")}; protobuf-es: ${String(ref instanceof Error ? ref.message : "ok")}`,
          ).toBe(ref instanceof Error);
          if (ours instanceof Error || ref instanceof Error) return;
          expect({
            service: ours.service,
            method: ours.method,
            payload: hex(ours.payload),
            metadata: ours.metadata,
          }).toEqual({
            service: ref.service,
            method: ref.method,
            payload: hex(ref.payload),
            metadata: ref.metadata.map((kv) => [kv.key, kv.value]),
          });
          if (ref.timeoutNano < 0n) expect(ours.timeoutNano).toBe(-1);
          else if (ref.timeoutNano < 2n ** 53n) expect(ours.timeoutNano).toBe(Number(ref.timeoutNano));
          else expect(ours.timeoutNano).toBeGreaterThanOrEqual(2 ** 53);
        }),
        fuzzParams(3000, 10_000),
      ),
    );
  });

  it("on any bytes returns a Request or throws an Error; never anything else, never a stack overflow", () => {
    assertMost(
      fc.check(
        fc.property(fc.oneof(junk, fc.uint8Array({ maxLength: 64 })), (bytes) => {
          try {
            decodeRequest(bytes);
          } catch (e) {
            expect(e).toBeInstanceOf(Error);
            expect(e).not.toBeInstanceOf(RangeError);
          }
        }),
        fuzzParams(3000, 6000),
      ),
    );
  });
});

describe("envelope decoder: Go's protobuf rules where protobuf-es differs", () => {
  const cases: [string, number[], { service: string; timeoutNano: number } | "error"][] = [
    [
      "a known string field with wire type 0 is skipped as unknown",
      [0x08, 0x01, 0x12, 0x01, 0x4d],
      { service: "", timeoutNano: 0 },
    ],
    [
      "timeout_nano sent length-delimited is skipped, not read packed",
      [0x22, 0x01, 0x05],
      { service: "", timeoutNano: 0 },
    ],
    ["an unknown group is skipped", [0x0a, 0x01, 0x53, 0x33, 0x08, 0x01, 0x34], { service: "S", timeoutNano: 0 }],
    [
      "a group on a known field number is skipped",
      [0x0b, 0x10, 0x01, 0x0c, 0x20, 0x07],
      { service: "", timeoutNano: 7 },
    ],
    ["a group whose end tag does not match is refused", [0x33, 0x3c], "error"],
    ["a group never ended is refused", [0x33, 0x08, 0x01], "error"],
    ["groups nested past 64 are refused, not recursed into", [...new Array<number>(100).fill(0x33)], "error"],
    ["a string that is not UTF-8 is refused (proto3)", [0x0a, 0x02, 0xc3, 0x28], "error"],
    ["a metadata value that is not UTF-8 is refused", [0x2a, 0x04, 0x12, 0x02, 0xff, 0xfe], "error"],
  ];
  it.each(cases)("%s", (_name, bytes, want) => {
    if (want === "error") {
      expect(() => decodeRequest(Uint8Array.from(bytes))).toThrow();
      return;
    }
    const got = decodeRequest(Uint8Array.from(bytes));
    expect({ service: got.service, timeoutNano: got.timeoutNano }).toEqual(want);
  });
});
