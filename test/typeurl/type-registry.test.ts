import { create, createFileRegistry, createRegistry, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  AnySchema,
  DurationSchema,
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FileDescriptorProtoSchema,
  TimestampSchema,
  anyPack,
  file_google_protobuf_timestamp,
  timestampFromMs,
  type Any,
} from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { TypeUrlError, createTypeRegistry, defineJsonType, type JsonCodec } from "ttrpc-es/typeurl";
import { omitEmpty } from "../../src/typeurl/go-json.js";

// example.v1.EchoResponse { string text = 1; int32 count = 2; } with a nested
// message, built in memory so the test needs no generated code.
const exampleFile = createFileRegistry(
  create(FileDescriptorProtoSchema, {
    name: "example/v1/echo.proto",
    package: "example.v1",
    syntax: "proto3",
    messageType: [
      {
        name: "EchoResponse",
        field: [
          {
            name: "text",
            number: 1,
            type: FieldDescriptorProto_Type.STRING,
            label: FieldDescriptorProto_Label.OPTIONAL,
            jsonName: "text",
          },
          {
            name: "count",
            number: 2,
            type: FieldDescriptorProto_Type.INT32,
            label: FieldDescriptorProto_Label.OPTIONAL,
            jsonName: "count",
          },
        ],
        nestedType: [{ name: "Inner", field: [] }],
      },
    ],
  }),
  () => undefined,
).getFile("example/v1/echo.proto")!;
const EchoResponseSchema = exampleFile.messages[0]!;

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("hex");
}

interface Point {
  x: number;
  y: number;
  label?: string;
  tags?: string[];
}

const pointCodec: JsonCodec<Point> = {
  toJson: (p) => omitEmpty({ x: p.x, y: p.y, label: p.label, tags: p.tags }),
  fromJson(json) {
    if (typeof json !== "object" || json === null) throw new Error("not an object");
    const { x, y, label } = json as Record<string, unknown>;
    if (typeof x !== "number" && x !== undefined) throw new Error("x is not a number");
    if (typeof y !== "number" && y !== undefined) throw new Error("y is not a number");
    if (typeof label !== "string" && label !== undefined) throw new Error("label is not a string");
    const p: Point = { x: x ?? 0, y: y ?? 0 };
    if (label !== undefined) p.label = label;
    return p;
  },
};

function expectTypeUrlError(fn: () => unknown, reason: TypeUrlError["reason"], url: string): TypeUrlError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(TypeUrlError);
  const error = caught as TypeUrlError;
  expect(error.reason).toBe(reason);
  expect(error.typeUrl).toBe(url);
  expect(error.message).toContain(url);
  return error;
}

describe("protobuf messages", () => {
  it("use the bare full name as type URL", () => {
    const registry = createTypeRegistry();
    expect(registry.typeUrlOf(TimestampSchema)).toBe("google.protobuf.Timestamp");
    expect(registry.typeUrlOf(create(EchoResponseSchema))).toBe("example.v1.EchoResponse");
    const any = registry.marshalAny(TimestampSchema, timestampFromMs(1500));
    expect(any.$typeName).toBe("google.protobuf.Any");
    expect(any.typeUrl).toBe("google.protobuf.Timestamp");
    expect(hex(any.value)).toBe(hex(toBinary(TimestampSchema, timestampFromMs(1500))));
  });

  it("encode to the Any wire bytes Go's typeurl writes", () => {
    const registry = createTypeRegistry(EchoResponseSchema);
    const any = registry.marshalAny(create(EchoResponseSchema, { text: "t", count: 2 }));
    expect(hex(toBinary(AnySchema, any))).toBe(`0a17${hex(Buffer.from("example.v1.EchoResponse"))}12050a01741002`);
  });

  it("need a registered schema when marshalled without one", () => {
    const registry = createTypeRegistry();
    expectTypeUrlError(() => registry.marshalAny(create(DurationSchema)), "not-found", "google.protobuf.Duration");
    registry.register(DurationSchema);
    expect(registry.marshalAny(create(DurationSchema, { seconds: 3n })).typeUrl).toBe("google.protobuf.Duration");
  });

  it("reject a message that does not match the schema given", () => {
    const registry = createTypeRegistry();
    const wrong = create(DurationSchema) as unknown as ReturnType<typeof timestampFromMs>;
    expectTypeUrlError(() => registry.marshalAny(TimestampSchema, wrong), "mismatch", "google.protobuf.Timestamp");
  });

  it("round-trip through unmarshalAny by bare name", () => {
    const registry = createTypeRegistry(exampleFile);
    const message = create(EchoResponseSchema, { text: "hello", count: 7 });
    const back = registry.unmarshalAny(registry.marshalAny(message));
    expect(back).toEqual(message);
  });

  it("fall back to the name after the last slash, so anyPack's type.googleapis.com/ URLs decode", () => {
    const registry = createTypeRegistry(file_google_protobuf_timestamp);
    const packed = anyPack(TimestampSchema, timestampFromMs(42_000));
    expect(packed.typeUrl).toBe("type.googleapis.com/google.protobuf.Timestamp");
    expect(registry.unmarshalAny(packed)).toEqual(timestampFromMs(42_000));
    const other = create(AnySchema, { typeUrl: "example.com/a/b/google.protobuf.Timestamp", value: packed.value });
    expect(registry.unmarshalAny(other)).toEqual(timestampFromMs(42_000));
  });

  it("are found through a protobuf-es registry and a file's nested messages", () => {
    const registry = createTypeRegistry(createRegistry(DurationSchema), exampleFile);
    const inner = create(AnySchema, { typeUrl: "example.v1.EchoResponse.Inner", value: new Uint8Array() });
    expect((registry.unmarshalAny(inner) as { $typeName: string }).$typeName).toBe("example.v1.EchoResponse.Inner");
    const duration = create(AnySchema, { typeUrl: "google.protobuf.Duration", value: new Uint8Array([8, 5]) });
    expect(registry.unmarshalAny(duration)).toEqual(create(DurationSchema, { seconds: 5n }));
  });

  it("fail with the URL when the bytes do not decode", () => {
    const registry = createTypeRegistry(TimestampSchema);
    const broken = create(AnySchema, { typeUrl: "google.protobuf.Timestamp", value: new Uint8Array([0x08]) });
    expectTypeUrlError(() => registry.unmarshalAny(broken), "decode", "google.protobuf.Timestamp");
  });
});

describe("JSON types", () => {
  it("encode as compact Go-style JSON under the joined URL", () => {
    const registry = createTypeRegistry();
    const PointType = registry.registerJson(["types.example.com/geo/", "/v1", "Point"], pointCodec);
    expect(PointType.typeUrl).toBe("types.example.com/geo/v1/Point");
    const any = registry.marshalAny(PointType, { x: 1, y: 0, label: "a<b", tags: [] });
    expect(any.typeUrl).toBe("types.example.com/geo/v1/Point");
    expect(new TextDecoder().decode(any.value)).toBe('{"x":1,"label":"a\\u003cb"}');
    expect(registry.typeUrlOf(PointType)).toBe("types.example.com/geo/v1/Point");
  });

  it("round-trip through unmarshalAny and unmarshalTo", () => {
    const registry = createTypeRegistry();
    const PointType = registry.registerJson(["geo", "Point"], pointCodec);
    const any = registry.marshalAny(PointType, { x: 3, y: -4, label: "p" });
    expect(registry.unmarshalAny(any)).toEqual({ x: 3, y: -4, label: "p" });
    const p: Point = registry.unmarshalTo(any, PointType);
    expect(p).toEqual({ x: 3, y: -4, label: "p" });
  });

  it("decode JSON written by another encoder (whitespace, other key order)", () => {
    const registry = createTypeRegistry();
    registry.registerJson(["geo", "Point"], pointCodec);
    const any = create(AnySchema, { typeUrl: "geo/Point", value: new TextEncoder().encode(' { "y" : 2 , "x" : 1 } ') });
    expect(registry.unmarshalAny(any)).toEqual({ x: 1, y: 2 });
  });

  it("win over the protobuf fallback when the URL matches exactly", () => {
    const registry = createTypeRegistry(TimestampSchema);
    registry.registerJson(["x", "google.protobuf.Timestamp"], pointCodec);
    const any = create(AnySchema, {
      typeUrl: "x/google.protobuf.Timestamp",
      value: new TextEncoder().encode('{"x":9}'),
    });
    expect(registry.unmarshalAny(any)).toEqual({ x: 9, y: 0 });
  });

  it("fail with the URL on bad JSON, bad UTF-8 and failed validation", () => {
    const registry = createTypeRegistry();
    registry.registerJson(["geo", "Point"], pointCodec);
    const withValue = (value: Uint8Array): Any => create(AnySchema, { typeUrl: "geo/Point", value });
    expectTypeUrlError(
      () => registry.unmarshalAny(withValue(new TextEncoder().encode('{"x":'))),
      "decode",
      "geo/Point",
    );
    expectTypeUrlError(
      () => registry.unmarshalAny(withValue(new Uint8Array([0x22, 0xff, 0x22]))),
      "decode",
      "geo/Point",
    );
    expectTypeUrlError(() => registry.unmarshalAny(withValue(new Uint8Array())), "decode", "geo/Point");
    const invalid = expectTypeUrlError(
      () => registry.unmarshalAny(withValue(new TextEncoder().encode('{"x":"1"}'))),
      "decode",
      "geo/Point",
    );
    expect(invalid.message).toContain("x is not a number");
  });

  it("fail with the URL when the value cannot be encoded", () => {
    const registry = createTypeRegistry();
    const PointType = registry.registerJson(["geo", "Point"], pointCodec);
    expectTypeUrlError(() => registry.marshalAny(PointType, { x: NaN, y: 0 }), "encode", "geo/Point");
  });

  it("write the value itself when the codec has no toJson", () => {
    const registry = createTypeRegistry();
    const Raw = registry.registerJson(["raw"], { fromJson: (j) => j as Record<string, unknown> });
    expect(new TextDecoder().decode(registry.marshalAny(Raw, { b: 1, a: "&" }).value)).toBe('{"b":1,"a":"\\u0026"}');
  });
});

describe("unknown URLs", () => {
  it.each(["sandbox-spec/vm/v2/StatedState/StatedState", "no.such.Message", "type.googleapis.com/no.such.Message", ""])(
    "fail with the URL %j",
    (url) => {
      const registry = createTypeRegistry(TimestampSchema);
      const error = expectTypeUrlError(
        () => registry.unmarshalAny(create(AnySchema, { typeUrl: url, value: new Uint8Array() })),
        "not-found",
        url,
      );
      expect(error.message).toBe(`type with url ${url}: not found`);
    },
  );
});

describe("registration", () => {
  it("of the same codec at the same URL is a no-op", () => {
    const registry = createTypeRegistry();
    const a = registry.registerJson(["geo", "Point"], pointCodec);
    const b = registry.registerJson(["geo/", "./Point"], pointCodec);
    expect(b).toBe(a);
    registry.register(defineJsonType(["geo/Point"], pointCodec));
  });

  it("of another codec at a taken URL is a conflict", () => {
    const registry = createTypeRegistry();
    registry.registerJson(["geo", "Point"], pointCodec);
    expectTypeUrlError(() => registry.registerJson(["geo/Point"], { ...pointCodec }), "conflict", "geo/Point");
  });

  it("of the same codec at another URL is a conflict", () => {
    const registry = createTypeRegistry();
    registry.registerJson(["geo", "Point"], pointCodec);
    const error = expectTypeUrlError(
      () => registry.registerJson(["geo", "v2", "Point"], pointCodec),
      "conflict",
      "geo/v2/Point",
    );
    expect(error.message).toContain('"geo/Point"');
  });

  it("rejects parts that join to an empty URL", () => {
    const registry = createTypeRegistry();
    expectTypeUrlError(() => registry.registerJson(["", ""], pointCodec), "invalid", "");
  });

  it("is per registry", () => {
    const one = createTypeRegistry();
    const two = createTypeRegistry();
    one.registerJson(["geo", "Point"], pointCodec);
    two.registerJson(["geo", "v2", "Point"], pointCodec);
    expectTypeUrlError(
      () => two.unmarshalAny(create(AnySchema, { typeUrl: "geo/Point", value: new TextEncoder().encode("{}") })),
      "not-found",
      "geo/Point",
    );
  });
});

describe("is and unmarshalTo", () => {
  it("compare URLs exactly, as Go's typeurl.Is", () => {
    const registry = createTypeRegistry(TimestampSchema);
    const PointType = registry.registerJson(["geo", "Point"], pointCodec);
    const bare = registry.marshalAny(TimestampSchema, timestampFromMs(0));
    expect(registry.is(bare, TimestampSchema)).toBe(true);
    expect(registry.is(bare, "google.protobuf.Timestamp")).toBe(true);
    expect(registry.is(bare, DurationSchema)).toBe(false);
    expect(registry.is(bare, PointType)).toBe(false);
    expect(registry.is(anyPack(TimestampSchema, timestampFromMs(0)), TimestampSchema)).toBe(false);
    expect(registry.is(registry.marshalAny(PointType, { x: 1, y: 1 }), PointType)).toBe(true);
  });

  it("refuses an Any of another type", () => {
    const registry = createTypeRegistry(TimestampSchema);
    const PointType = registry.registerJson(["geo", "Point"], pointCodec);
    const bare = registry.marshalAny(TimestampSchema, timestampFromMs(0));
    expectTypeUrlError(() => registry.unmarshalTo(bare, PointType), "mismatch", "google.protobuf.Timestamp");
    expectTypeUrlError(() => registry.unmarshalTo(bare, DurationSchema), "mismatch", "google.protobuf.Timestamp");
    const prefixed = anyPack(TimestampSchema, timestampFromMs(0));
    expectTypeUrlError(() => registry.unmarshalTo(prefixed, TimestampSchema), "mismatch", prefixed.typeUrl);
    const ts = registry.unmarshalTo(bare, TimestampSchema);
    expect(ts.$typeName).toBe("google.protobuf.Timestamp");
  });

  it("decodes a typed JSON Any with an unregistered type's own codec", () => {
    const registry = createTypeRegistry();
    const PointType = defineJsonType(["geo", "Point"], pointCodec);
    const any = registry.marshalAny(PointType, { x: 5, y: 6 });
    expect(registry.unmarshalTo(any, PointType)).toEqual({ x: 5, y: 6 });
  });
});

describe("an Any given to marshalAny", () => {
  it("is returned as is, as Go does", () => {
    const registry = createTypeRegistry();
    const any = create(AnySchema, { typeUrl: "whatever/Thing", value: new Uint8Array([1, 2]) });
    expect(registry.marshalAny(any)).toBe(any);
    expect(fromBinary(AnySchema, toBinary(AnySchema, any))).toEqual(any);
  });
});
