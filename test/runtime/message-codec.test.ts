import { describe, expect, it } from "vitest";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { EchoRequestSchema } from "../../gen/ttrpces/interop/v1/interop_pb.js";
import { PrepareSandboxRequestSchema } from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_pb.js";
import { encodeMessage } from "../../src/message-codec.js";
import { concat } from "../common.js";

describe("encodeMessage", () => {
  it("is protobuf-es's encoding for messages without large bytes", () => {
    const m = create(EchoRequestSchema, { text: "t", payload: new Uint8Array(100).fill(7), count: 3 });
    const e = encodeMessage(EchoRequestSchema, m);
    expect(e.parts).toHaveLength(1);
    expect(e.parts[0]).toEqual(toBinary(EchoRequestSchema, m));
  });

  it("appends a large bytes field uncopied; the result decodes to the same message and has the same length", () => {
    const payload = Uint8Array.from({ length: 70_000 }, (_, i) => i & 0xff);
    const init = { text: "t", payload, count: 3, replySize: 9 };
    const e = encodeMessage(EchoRequestSchema, init);
    expect(e.parts).toContain(payload);
    const bytes = concat(e.parts);
    expect(e.length).toBe(bytes.length);
    expect(bytes.length).toBe(toBinary(EchoRequestSchema, create(EchoRequestSchema, init)).length);
    const back = fromBinary(EchoRequestSchema, bytes);
    expect(back.text).toBe("t");
    expect(back.count).toBe(3);
    expect(back.replySize).toBe(9);
    expect(back.payload).toEqual(payload);
  });

  it("leaves the caller's message untouched", () => {
    const m = create(EchoRequestSchema, { payload: new Uint8Array(20_000) });
    encodeMessage(EchoRequestSchema, m);
    expect(m.payload.length).toBe(20_000);
  });

  it("leaves bytes fields inside messages and oneofs to protobuf-es", () => {
    const m = create(PrepareSandboxRequestSchema, { sessionId: "s" });
    expect(concat(encodeMessage(PrepareSandboxRequestSchema, m).parts)).toEqual(
      toBinary(PrepareSandboxRequestSchema, m),
    );
  });
});
