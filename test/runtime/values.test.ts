// The runtime's value types on their own: Metadata, the Code names and
// TtrpcError.from / findDetails. The calls tests meet them only in passing.
import { anyPack, DurationSchema, TimestampSchema } from "@bufbuild/protobuf/wkt";
import { create, createRegistry } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { Code, codeFromName, codeName } from "../../src/code.js";
import { Metadata } from "../../src/metadata.js";
import { TtrpcError } from "../../src/ttrpc-error.js";

describe("Metadata", () => {
  it("starts empty", () => {
    const md = new Metadata();
    expect(md.size).toBe(0);
    expect(md.get("a")).toBeUndefined();
    expect(md.getAll("a")).toEqual([]);
    expect(md.has("a")).toBe(false);
    expect(md.delete("a")).toBe(false);
    expect([...md]).toEqual([]);
    expect(md.toJSON()).toEqual({});
  });

  it("is made from a record (one or many values), pairs, or another Metadata, keys lower-cased", () => {
    const fromRecord = new Metadata({ One: "1", Many: ["a", "b"] });
    expect(fromRecord.toJSON()).toEqual({ one: ["1"], many: ["a", "b"] });
    const fromPairs = new Metadata([
      ["K", "x"],
      ["k", "y"],
    ]);
    expect(fromPairs.getAll("k")).toEqual(["x", "y"]);
    const copy = new Metadata(fromRecord);
    expect(copy.toJSON()).toEqual(fromRecord.toJSON());
    // An independent copy: neither sees the other's later writes.
    copy.append("many", "c");
    fromRecord.set("one", "2");
    expect(fromRecord.getAll("many")).toEqual(["a", "b"]);
    expect(copy.get("one")).toBe("1");
    expect(new Metadata(new Metadata()).size).toBe(0);
  });

  it("reads keys case-insensitively", () => {
    const md = new Metadata({ key: ["v1", "v2"] });
    expect(md.get("KEY")).toBe("v1");
    expect(md.getAll("Key")).toEqual(["v1", "v2"]);
    expect(md.has("KEY")).toBe(true);
    // getAll hands out a copy.
    md.getAll("key").push("x");
    expect(md.getAll("key")).toEqual(["v1", "v2"]);
  });

  it("sets, appends and deletes", () => {
    const md = new Metadata();
    expect(md.append("A", "1", "2")).toBe(md);
    md.append("a", "3");
    md.append("empty");
    expect(md.has("empty")).toBe(false);
    expect(md.getAll("a")).toEqual(["1", "2", "3"]);
    expect(md.set("A", "only")).toBe(md);
    expect(md.getAll("a")).toEqual(["only"]);
    md.set("b", "x");
    expect(md.size).toBe(2);
    // set with no values deletes the key.
    md.set("B");
    expect(md.has("b")).toBe(false);
    expect(md.delete("A")).toBe(true);
    expect(md.delete("a")).toBe(false);
    expect(md.size).toBe(0);
  });

  it("iterates one pair per value, in order, and clones independently", () => {
    const md = new Metadata({ a: ["1", "2"], b: "3" });
    expect([...md]).toEqual([
      ["a", "1"],
      ["a", "2"],
      ["b", "3"],
    ]);
    expect([...md.entries()]).toEqual([...md]);
    const c = md.clone();
    c.set("a", "9");
    expect(md.getAll("a")).toEqual(["1", "2"]);
    expect(c.toJSON()).toEqual({ a: ["9"], b: ["3"] });
    // toJSON's arrays are copies too.
    md.toJSON().a?.push("x");
    expect(md.getAll("a")).toEqual(["1", "2"]);
  });
});

describe("Code names", () => {
  it("names every code as gRPC spells it, and unknown numbers as CODE_n", () => {
    expect(codeName(Code.Ok)).toBe("OK");
    expect(codeName(Code.DeadlineExceeded)).toBe("DEADLINE_EXCEEDED");
    expect(codeName(Code.Unauthenticated)).toBe("UNAUTHENTICATED");
    expect(codeName(99)).toBe("CODE_99");
  });

  it("finds a code by name, case-insensitively", () => {
    expect(codeFromName("OK")).toBe(Code.Ok);
    expect(codeFromName("not_found")).toBe(Code.NotFound);
    expect(codeFromName("UNAUTHENTICATED")).toBe(Code.Unauthenticated);
    expect(codeFromName("NOPE")).toBeUndefined();
  });
});

describe("TtrpcError", () => {
  it("prefixes the message with the code's name and keeps the raw message apart", () => {
    const e = new TtrpcError("gone", Code.NotFound);
    expect(e.message).toBe("[NOT_FOUND] gone");
    expect(e.rawMessage).toBe("gone");
    expect(new TtrpcError("", Code.Aborted).message).toBe("[ABORTED]");
    expect(new TtrpcError("x").code).toBe(Code.Unknown);
  });

  it("from: keeps a TtrpcError, turns an abort into CANCELLED and a timeout into DEADLINE_EXCEEDED", () => {
    const own = new TtrpcError("mine", Code.Aborted);
    expect(TtrpcError.from(own, Code.Internal)).toBe(own);

    const abort = new DOMException("stop", "AbortError");
    const a = TtrpcError.from(abort, Code.Internal);
    expect([a.code, a.rawMessage, a.cause]).toEqual([Code.Canceled, "stop", abort]);

    const timeout = new DOMException("late", "TimeoutError");
    const t = TtrpcError.from(timeout);
    expect([t.code, t.rawMessage, t.cause]).toEqual([Code.DeadlineExceeded, "late", timeout]);

    const other = new Error("boom");
    const o = TtrpcError.from(other, Code.Internal);
    expect([o.code, o.rawMessage, o.cause]).toEqual([Code.Internal, "boom", other]);
    expect(TtrpcError.from(other).code).toBe(Code.Unknown);

    const n = TtrpcError.from(42, Code.DataLoss);
    expect([n.code, n.rawMessage, n.cause]).toEqual([Code.DataLoss, "42", 42]);
  });

  it("findDetails: the details of one type, or every detail a registry knows", () => {
    const d = create(DurationSchema, { seconds: 5n });
    const ts = create(TimestampSchema, { seconds: 7n });
    const e = new TtrpcError("x", Code.Internal, {
      details: [anyPack(DurationSchema, d), anyPack(TimestampSchema, ts)],
    });
    expect(e.findDetails(DurationSchema)).toEqual([d]);
    expect(e.findDetails(TimestampSchema)).toEqual([ts]);
    expect(e.findDetails(createRegistry(DurationSchema))).toEqual([d]);
    expect(e.findDetails(createRegistry(DurationSchema, TimestampSchema))).toEqual([d, ts]);
    expect(new TtrpcError("y").findDetails(DurationSchema)).toEqual([]);
  });
});
