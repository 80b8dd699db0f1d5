import { describe, expect, it } from "vitest";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { RequestSchema, ResponseSchema } from "../../gen/ttrpc/request_pb.js";
import { decodeRequest, decodeResponse, encodeRequestFrame, encodeResponseFrame } from "../../src/envelope.js";
import { concat, frameBody } from "../common.js";

const hex = (s: string) =>
  Uint8Array.from(
    s
      .replace(/\s+/g, "")
      .match(/../g)!
      .map((b) => parseInt(b, 16)),
  );

// ttrpc-rust's src/proto.rs test vector, quoted in docs/protocol.md §7.
const VECTOR = hex(
  "0a 11 67 72 70 63 2e 54 65 73 74 53 65 72 76 69 63 65 73 12 04 54 65 73 74 1a 09 01 02" +
    "03 04 05 06 07 08 09 20 80 da c4 09 2a 18 0a 09 74 65 73 74 5f 6b 65 79 31 12 0b 74 65 73" +
    "74 5f 76 61 6c 75 65 31",
);

describe("hand-coded envelope", () => {
  it("encodes the 67-byte Request test vector exactly", () => {
    const frame = concat(
      encodeRequestFrame(1, 0, "grpc.TestServices", "Test", hex("010203040506070809"), 20_000_000, [
        ["test_key1", "test_value1"],
      ]),
    );
    expect(VECTOR.length).toBe(67);
    expect(frame.subarray(0, 10)).toEqual(hex("00000043 00000001 01 00"));
    expect(frame.subarray(10)).toEqual(VECTOR);
    const d = decodeRequest(VECTOR);
    expect(d).toMatchObject({ service: "grpc.TestServices", method: "Test", timeoutNano: 20_000_000 });
    expect([...d.payload]).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(d.metadata).toEqual([["test_key1", "test_value1"]]);
  });

  it("matches protoc-gen-es byte for byte, inline and with a large payload", () => {
    for (const size of [0, 1, 100, 16 * 1024, 16 * 1024 + 1, 200_000]) {
      const payload = Uint8Array.from({ length: size }, (_, i) => (i * 7) & 0xff);
      const md: [string, string][] = [
        ["containerd-namespace-ttrpc", "k8s.io"],
        ["a", ""],
        ["", "b"],
      ];
      const ours = frameBody(encodeRequestFrame(7, 0, "containerd.task.v2.Task", "Create", payload, 5e9, md));
      const ref = toBinary(
        RequestSchema,
        create(RequestSchema, {
          service: "containerd.task.v2.Task",
          method: "Create",
          payload,
          timeoutNano: 5_000_000_000n,
          metadata: md.map(([key, value]) => ({ key, value })),
        }),
      );
      expect(ours, `payload ${size}`).toEqual(ref);
    }
  });

  it("encodes Responses as Go does: empty OK status is 0a 00; errors carry code, message, details", () => {
    expect(frameBody(encodeResponseFrame(1, { code: 0, message: "", details: [] }, new Uint8Array(0)))).toEqual(
      hex("0a00"),
    );
    const details = [create(AnySchema, { typeUrl: "google.protobuf.StringValue", value: hex("0a0178") })];
    for (const [code, message, payload] of [
      [5, "not found", new Uint8Array(0)],
      [0, "", new Uint8Array(40_000).fill(3)],
      [-1, "negative", new Uint8Array(0)],
      [2147483647, "max", new Uint8Array([1])],
    ] as const) {
      const ours = frameBody(encodeResponseFrame(1, { code, message, details }, payload));
      const ref = toBinary(ResponseSchema, create(ResponseSchema, { status: { code, message, details }, payload }));
      expect(ours, `code ${code}`).toEqual(ref);
      const back = decodeResponse(ours);
      expect(back.status).toMatchObject({ code, message });
      expect(back.status!.details[0]!.typeUrl).toBe("google.protobuf.StringValue");
      expect(back.payload).toEqual(payload);
    }
  });

  it("treats an absent status and an empty Response as OK", () => {
    expect(decodeResponse(new Uint8Array(0))).toEqual({ status: undefined, payload: new Uint8Array(0) });
    const r = decodeResponse(toBinary(ResponseSchema, create(ResponseSchema, { payload: hex("0102") })));
    expect(r.status).toBeUndefined();
    expect([...r.payload]).toEqual([1, 2]);
  });

  it("decodes what protoc-gen-es encodes, unknown fields skipped", () => {
    const bytes = toBinary(
      RequestSchema,
      create(RequestSchema, { service: "s", method: "m", timeoutNano: 1n, metadata: [{ key: "k", value: "v" }] }),
    );
    const withUnknown = concat([bytes, hex("f8 01 05"), hex("82 02 02 aabb")]);
    expect(decodeRequest(withUnknown)).toMatchObject({
      service: "s",
      method: "m",
      timeoutNano: 1,
      metadata: [["k", "v"]],
    });
    expect(fromBinary(RequestSchema, withUnknown).service).toBe("s");
  });

  it("skips unknown fields in a Response, its Status and the Status's Any details", () => {
    const any = hex("0a 01 74  12 02 0102  18 01"); // type_url "t", value 01 02, unknown field 3
    const status = concat([hex("08 05  12 02 6869  20 07  1a 09"), any]); // code 5, "hi", unknown 4, details
    const response = concat([hex("0a 13"), status, hex("12 01 2a  48 01")]); // payload 2a, unknown field 9
    const r = decodeResponse(response);
    expect([...r.payload]).toEqual([0x2a]);
    expect(r.status).toMatchObject({ code: 5, message: "hi" });
    expect(r.status?.details.map((d) => [d.typeUrl, [...d.value]])).toEqual([["t", [1, 2]]]);
    // protobuf-es reads the same bytes the same way.
    const want = fromBinary(ResponseSchema, response);
    expect(want.status?.details[0]?.typeUrl).toBe("t");
    expect(want.status?.code).toBe(5);
  });

  it("rejects malformed envelopes with an error, never a crash", () => {
    for (const bad of ["0a", "0a05616263", "12ff", "ff", "0b", "22", "08"]) {
      expect(() => decodeRequest(hex(bad)), bad).toThrow(Error);
    }
    expect(() => decodeResponse(hex("0a03 08"))).toThrow(Error);
  });
});
