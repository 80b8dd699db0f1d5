import { describe, expect, it } from "vitest";
import { encodeGoJson, omitEmpty } from "../../src/typeurl/go-json.js";

describe("encodeGoJson", () => {
  it("writes compact JSON in the given key order", () => {
    expect(encodeGoJson({ z: 1, a: [true, null], m: { b: "x", a: 2.5 } })).toBe(
      '{"z":1,"a":[true,null],"m":{"b":"x","a":2.5}}',
    );
  });

  it("escapes HTML characters and line separators as Go does", () => {
    expect(encodeGoJson({ s: "<a href='x'>&</a>\u2028\u2029" })).toBe(
      '{"s":"\\u003ca href=\'x\'\\u003e\\u0026\\u003c/a\\u003e\\u2028\\u2029"}',
    );
  });

  it("keeps the usual JSON escapes", () => {
    expect(encodeGoJson('"\\\n\t')).toBe('"\\"\\\\\\n\\t"');
  });

  it.each([NaN, Infinity, -Infinity])("rejects %s, which Go cannot encode", (n) => {
    expect(() => encodeGoJson({ n })).toThrow(/cannot carry the number/);
  });

  it("rejects bigint and a top-level undefined", () => {
    expect(() => encodeGoJson({ n: 1n })).toThrow(/bigint/);
    expect(() => encodeGoJson(undefined)).toThrow(/undefined/);
  });
});

describe("omitEmpty", () => {
  it("drops what Go's omitempty drops and keeps the order of the rest", () => {
    const out = omitEmpty({
      a: 0,
      b: "x",
      c: "",
      d: false,
      e: [],
      f: null,
      g: undefined,
      h: {},
      i: [0],
      j: true,
      k: -1,
    });
    expect(Object.keys(out)).toEqual(["b", "h", "i", "j", "k"]);
    expect(encodeGoJson(out)).toBe('{"b":"x","h":{},"i":[0],"j":true,"k":-1}');
  });
});
