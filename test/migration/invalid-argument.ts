// The INVALID_ARGUMENT a parser or encoder throws, for tests that check the
// exact problem it names (the message an operator reads).
import { expect } from "vitest";
import { Code, TtrpcError } from "ttrpc-es";
import { thrown } from "../common.js";

/** The rawMessage of the INVALID_ARGUMENT `f` throws (the test fails on another code, another error or none). */
export function invalidArgument(f: () => unknown): string {
  const e = thrown(f, TtrpcError);
  expect(e.code).toBe(Code.InvalidArgument);
  return e.rawMessage;
}
