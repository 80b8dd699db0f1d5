// messageJson never loses an answer: Anys it cannot unpack print as their
// type URL and bytes, also when they sit inside an Any it can unpack.
import { create, createRegistry } from "@bufbuild/protobuf";
import { AnySchema, StructSchema, anyPack, StringValueSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { messageJson } from "../../src/cli/any-json.js";

const registry = createRegistry(AnySchema, StringValueSchema, StructSchema);

describe("messageJson", () => {
  it("prints an Any of a type it knows, but whose bytes are not that type, as its bytes", () => {
    const bad = create(AnySchema, {
      typeUrl: "type.googleapis.com/google.protobuf.StringValue",
      value: new Uint8Array([0x0a, 0x05, 0x61]), // a string field announcing 5 bytes, then 1
    });
    expect(messageJson(AnySchema, bad, { registry })).toEqual({
      "@type": "type.googleapis.com/google.protobuf.StringValue",
      value: Buffer.from([0x0a, 0x05, 0x61]).toString("base64"),
    });
  });

  it("opens an unknown JSON Any nested in a known Any", () => {
    const json = create(AnySchema, { typeUrl: "example/Json", value: new TextEncoder().encode('{"a":1}') });
    const outer = anyPack(AnySchema, json);
    expect(messageJson(AnySchema, outer, { registry })).toEqual({
      "@type": "type.googleapis.com/google.protobuf.Any",
      value: { "@type": "example/Json", value: { a: 1 } },
    });
  });
});
