// The hand-coded envelope field by field: each known field of a Request,
// Response, Status, Any and KeyValue sent with another wire type is skipped
// as unknown (Go's protobuf rule), and every encoding edge (empty names,
// empty Any fields, no status, the copy limit, the size limit) gives
// protobuf-es's bytes in the documented buffers.
import { create, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { RequestSchema, ResponseSchema } from "../../gen/ttrpc/request_pb.js";
import { decodeRequest, decodeResponse, encodeRequestFrame, encodeResponseFrame } from "../../src/envelope.js";
import { OversizedMessageError } from "../../src/ttrpc-error.js";
import { concat, frameBody } from "../common.js";

const b = (...bytes: number[]) => Uint8Array.from(bytes);
/** A Response carrying `status` bytes as its field 1. */
const withStatus = (status: Uint8Array) => concat([b(0x0a, status.length), status]);

describe("decoding: a known field with another wire type is skipped", () => {
  it.each<[string, Uint8Array, object]>([
    ["service as a varint", b(0x08, 0x05, 0x0a, 0x01, 0x53), { service: "S" }],
    ["method as a varint", b(0x10, 0x05, 0x12, 0x01, 0x4d), { method: "M" }],
    ["payload as a varint", b(0x18, 0x05, 0x1a, 0x01, 0x07), { payload: b(7) }],
    ["metadata as a varint", b(0x28, 0x01, 0x2a, 0x06, 0x0a, 0x01, 0x6b, 0x12, 0x01, 0x76), { metadata: [["k", "v"]] }],
    [
      "a metadata key as a varint",
      b(0x2a, 0x08, 0x08, 0x01, 0x0a, 0x01, 0x6b, 0x12, 0x01, 0x76),
      { metadata: [["k", "v"]] },
    ],
    [
      "a metadata value as a varint",
      b(0x2a, 0x08, 0x10, 0x01, 0x0a, 0x01, 0x6b, 0x12, 0x01, 0x76),
      { metadata: [["k", "v"]] },
    ],
  ])("Request: %s", (_, bytes, want) => {
    expect(decodeRequest(bytes)).toMatchObject(want);
  });

  it("Response: status and payload as varints", () => {
    expect(decodeResponse(b(0x08, 0x01, 0x12, 0x01, 0x2a))).toEqual({ status: undefined, payload: b(0x2a) });
    expect(decodeResponse(b(0x10, 0x01))).toEqual({ status: undefined, payload: b() });
  });

  it("Status: code length-delimited, message and details as varints", () => {
    const status = decodeResponse(
      withStatus(
        b(0x0a, 0x01, 0x05, 0x08, 0x03, 0x10, 0x07, 0x12, 0x01, 0x61, 0x18, 0x01, 0x1a, 0x03, 0x0a, 0x01, 0x74),
      ),
    ).status!;
    expect(status.code).toBe(3);
    expect(status.message).toBe("a");
    expect(status.details.map((d) => d.typeUrl)).toEqual(["t"]);
  });

  it("Any: type_url and value as varints; a missing type_url is empty; the value is a copy", () => {
    const response = withStatus(b(0x1a, 0x0a, 0x08, 0x01, 0x0a, 0x01, 0x74, 0x10, 0x01, 0x12, 0x01, 0x09));
    const [d] = decodeResponse(response).status!.details;
    expect(d!.typeUrl).toBe("t");
    expect([...d!.value]).toEqual([9]);
    // A detail kept by the caller must not pin the whole frame's buffer.
    expect(d!.value.buffer).not.toBe(response.buffer);
    const [bare] = decodeResponse(withStatus(b(0x1a, 0x03, 0x12, 0x01, 0x09))).status!.details;
    expect(bare!.typeUrl).toBe("");
  });
});

describe("encoding edges, byte for byte with protobuf-es", () => {
  it("a Request with no service name, or no method name", () => {
    for (const [service, method] of [
      ["", "m"],
      ["s", ""],
    ] as const) {
      const frame = encodeRequestFrame(1, 0, service, method, b(1), 0, []);
      expect(frameBody(frame)).toEqual(
        toBinary(RequestSchema, create(RequestSchema, { service, method, payload: b(1) })),
      );
    }
  });

  it("a Response with no status, and Any details with no type_url or no value", () => {
    expect(frameBody(encodeResponseFrame(1, undefined, b(1, 2)))).toEqual(
      toBinary(ResponseSchema, create(ResponseSchema, { payload: b(1, 2) })),
    );
    const details = [
      { $typeName: "google.protobuf.Any" as const, typeUrl: "", value: b(5) },
      { $typeName: "google.protobuf.Any" as const, typeUrl: "t", value: b() },
    ];
    expect(frameBody(encodeResponseFrame(1, { code: 128, message: "", details }, b()))).toEqual(
      toBinary(ResponseSchema, create(ResponseSchema, { status: { code: 128, details } })),
    );
  });

  it("a payload up to 16 KiB is copied into one buffer; a bigger one is passed on as it is", () => {
    const small = new Uint8Array(16 * 1024).fill(1);
    const big = new Uint8Array(16 * 1024 + 1).fill(2);
    expect(encodeRequestFrame(1, 0, "s", "m", small, 5, [])).toHaveLength(1);
    expect(encodeResponseFrame(1, undefined, small)).toHaveLength(1);
    const request = encodeRequestFrame(1, 0, "s", "m", big, 5, [["k", "v"]]);
    expect(request).toHaveLength(3);
    expect(request[1]).toBe(big);
    // Nothing after the payload: no empty third buffer.
    expect(encodeRequestFrame(1, 0, "s", "m", big, 0, [])).toHaveLength(2);
    const response = encodeResponseFrame(1, undefined, big);
    expect(response).toHaveLength(2);
    expect(response[1]).toBe(big);
    expect(frameBody(request)).toEqual(
      toBinary(
        RequestSchema,
        create(RequestSchema, {
          service: "s",
          method: "m",
          payload: big,
          timeoutNano: 5n,
          metadata: [{ key: "k", value: "v" }],
        }),
      ),
    );
  });

  it("a payload given in parts is laid out in order", () => {
    const payload = { parts: [b(1, 2), b(3), b(4, 5, 6)], length: 6 };
    const want = b(1, 2, 3, 4, 5, 6);
    expect(frameBody(encodeRequestFrame(1, 0, "s", "m", payload, 0, []))).toEqual(
      toBinary(RequestSchema, create(RequestSchema, { service: "s", method: "m", payload: want })),
    );
    expect(frameBody(encodeResponseFrame(1, undefined, payload))).toEqual(
      toBinary(ResponseSchema, create(ResponseSchema, { payload: want })),
    );
  });

  it("a message exactly at the size limit goes; one byte over is refused with both lengths", () => {
    const requestLength = frameBody(encodeRequestFrame(1, 0, "s", "m", b(1, 2, 3), 0, [])).length;
    expect(() => encodeRequestFrame(1, 0, "s", "m", b(1, 2, 3), 0, [], requestLength)).not.toThrow();
    expect(() => encodeRequestFrame(1, 0, "s", "m", b(1, 2, 3), 0, [], requestLength - 1)).toThrow(
      expect.objectContaining({ rejectedLength: requestLength, maximumLength: requestLength - 1 }),
    );
    const responseLength = frameBody(encodeResponseFrame(1, undefined, b(1, 2, 3))).length;
    expect(() => encodeResponseFrame(1, undefined, b(1, 2, 3), responseLength)).not.toThrow();
    expect(() => encodeResponseFrame(1, undefined, b(1, 2, 3), responseLength - 1)).toThrow(OversizedMessageError);
  });
});
