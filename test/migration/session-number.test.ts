import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { normalizeSessionId, sessionNumber } from "ttrpc-es/migration";

describe("sessionNumber", () => {
  // Independent vectors: SHA-256("abc") = ba7816bf 8f01cfea ..., SHA-256("") = e3b0c442 98fc1c14 ...
  it("is the first 4 bytes of SHA-256, big-endian", () => {
    expect(sessionNumber("abc")).toBe(0xba7816bf);
    expect(sessionNumber("")).toBe(0xe3b0c442);
  });

  it("hashes a GUID in its lower-case, brace-less form", () => {
    const canonical = "6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";
    const want = createHash("sha256").update(canonical).digest().readUInt32BE(0);
    expect(sessionNumber(canonical)).toBe(want);
    expect(sessionNumber("6F1E2D3C-4B5A-4978-8695-A4B3C2D1E0F9")).toBe(want);
    expect(sessionNumber("{6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9}")).toBe(want);
    expect(sessionNumber("{6F1E2D3C-4b5a-4978-8695-A4B3C2D1E0F9}")).toBe(want);
  });

  it("keeps other strings as they are", () => {
    expect(sessionNumber("Session-1")).not.toBe(sessionNumber("session-1"));
    expect(sessionNumber(" abc")).not.toBe(sessionNumber("abc"));
    expect(sessionNumber("é")).toBe(
      createHash("sha256")
        .update(Buffer.from([0xc3, 0xa9]))
        .digest()
        .readUInt32BE(0),
    );
  });

  it("is an unsigned 32-bit integer", () => {
    for (const id of ["a", "b", "c", "abc", "6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"]) {
      const n = sessionNumber(id);
      expect(Number.isInteger(n) && n >= 0 && n < 2 ** 32).toBe(true);
    }
    // SHA-256("abc") starts with 0xba: a number above 2^31 stays positive.
    expect(sessionNumber("abc")).toBeGreaterThan(2 ** 31);
  });
});

describe("normalizeSessionId", () => {
  it.each([
    ["{ABCDEF01-2345-6789-ABCD-EF0123456789}", "abcdef01-2345-6789-abcd-ef0123456789"],
    ["ABCDEF01-2345-6789-abcd-ef0123456789", "abcdef01-2345-6789-abcd-ef0123456789"],
    // Not GUIDs: one brace only, no dashes, wrong group length, extra text.
    ["{ABCDEF01-2345-6789-ABCD-EF0123456789", "{ABCDEF01-2345-6789-ABCD-EF0123456789"],
    ["ABCDEF0123456789ABCDEF0123456789", "ABCDEF0123456789ABCDEF0123456789"],
    ["ABCDEF01-2345-6789-ABCD-EF012345678", "ABCDEF01-2345-6789-ABCD-EF012345678"],
    ["ABCDEF01-2345-6789-ABCD-EF0123456789 ", "ABCDEF01-2345-6789-ABCD-EF0123456789 "],
    ["My-Session", "My-Session"],
  ])("normalizes %j to %j", (input, want) => {
    expect(normalizeSessionId(input)).toBe(want);
  });
});
