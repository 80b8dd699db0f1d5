const goEscapes: Record<string, string> = {
  "<": "\\u003c",
  ">": "\\u003e",
  "&": "\\u0026",
  "\u2028": "\\u2028",
  "\u2029": "\\u2029",
};

/**
 * Serializes a JSON value the way Go's `encoding/json` `Marshal` does, so a
 * value encoded here is byte-for-byte what a Go program would write for the
 * same data: compact, object keys in the order given (Go writes struct fields
 * in declaration order), and `<`, `>`, `&`, U+2028, U+2029 escaped as `\u003c`
 * etc.
 *
 * Rejects what Go cannot encode either (NaN and ±Infinity) instead of writing
 * `null` as `JSON.stringify` would, and rejects bigint and undefined at the
 * top level. Known difference: floats below 1e-6 are written as `1e-7` where
 * Go writes `1e-07`; decoders accept both.
 */
export function encodeGoJson(value: unknown): string {
  const text = JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === "number" && !Number.isFinite(v)) {
      throw new TypeError(`JSON cannot carry the number ${v}`);
    }
    if (typeof v === "bigint") {
      throw new TypeError(`JSON cannot carry the bigint ${v}n; convert it to a number or a string`);
    }
    return v;
  }) as string | undefined;
  if (text === undefined) throw new TypeError(`JSON cannot carry ${typeof value}`);
  // These characters can only occur inside JSON strings, so a plain
  // replacement cannot touch the structure.
  return text.replace(/[<>&\u2028\u2029]/g, (c) => goEscapes[c]!);
}

/** A value Go's `omitempty` would drop: false, 0, "", null/nil, an empty slice. */
function isGoEmpty(value: unknown): boolean {
  return (
    value === undefined ||
    value === null ||
    value === false ||
    value === 0 ||
    value === "" ||
    (Array.isArray(value) && value.length === 0)
  );
}

/**
 * Returns a copy of `object` without the properties Go's `omitempty` would
 * leave out (undefined, null, false, 0, "", []), keeping the order of the
 * others. Nested objects are kept even when empty, as Go keeps non-pointer
 * structs; leave an optional nested object undefined to omit it.
 */
export function omitEmpty<T extends object>(object: T): Partial<T> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(object)) {
    if (!isGoEmpty(value)) out[key] = value;
  }
  return out as Partial<T>;
}
