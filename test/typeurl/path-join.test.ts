import { describe, expect, it } from "vitest";
import { pathClean, pathJoin } from "../../src/typeurl/path-join.js";

// The vectors of Go's src/path/path_test.go (cleantests, jointests).
const cleanVectors: Array<[string, string]> = [
  // Already clean
  ["", "."],
  ["abc", "abc"],
  ["abc/def", "abc/def"],
  ["a/b/c", "a/b/c"],
  [".", "."],
  ["..", ".."],
  ["../..", "../.."],
  ["../../abc", "../../abc"],
  ["/abc", "/abc"],
  ["/", "/"],
  // Remove trailing slash
  ["abc/", "abc"],
  ["abc/def/", "abc/def"],
  ["a/b/c/", "a/b/c"],
  ["./", "."],
  ["../", ".."],
  ["../../", "../.."],
  ["/abc/", "/abc"],
  // Remove doubled slash
  ["abc//def//ghi", "abc/def/ghi"],
  ["//abc", "/abc"],
  ["///abc", "/abc"],
  ["//abc//", "/abc"],
  ["abc//", "abc"],
  // Remove . elements
  ["abc/./def", "abc/def"],
  ["/./abc/def", "/abc/def"],
  ["abc/.", "abc"],
  // Remove .. elements
  ["abc/def/ghi/../jkl", "abc/def/jkl"],
  ["abc/def/../ghi/../jkl", "abc/jkl"],
  ["abc/def/..", "abc"],
  ["abc/def/../..", "."],
  ["/abc/def/../..", "/"],
  ["abc/def/../../..", ".."],
  ["/abc/def/../../..", "/"],
  ["abc/def/../../../ghi/jkl/../../../mno", "../../mno"],
  ["/../abc", "/abc"],
  // Combinations
  ["abc/./../def", "def"],
  ["abc//./../def", "def"],
  ["abc/../../././../def", "../../def"],
];

const joinVectors: Array<[string[], string]> = [
  [[], ""],
  [[""], ""],
  [["a"], "a"],
  [["a", "b"], "a/b"],
  [["a", ""], "a"],
  [["", "b"], "b"],
  [["/", "a"], "/a"],
  [["/", ""], "/"],
  [["a/", "b"], "a/b"],
  [["a/", ""], "a"],
  [["", ""], ""],
];

describe("pathClean", () => {
  it.each(cleanVectors)("cleans %j to %j", (input, want) => {
    expect(pathClean(input)).toBe(want);
  });

  it.each(cleanVectors)("leaves the clean form of %j unchanged", (_input, want) => {
    expect(pathClean(want)).toBe(want);
  });

  it("treats non-ASCII elements as opaque text", () => {
    expect(pathClean("é/./ü//../ß/")).toBe("é/ß");
  });
});

describe("pathJoin", () => {
  it.each(joinVectors)("joins %j to %j", (parts, want) => {
    expect(pathJoin(...parts)).toBe(want);
  });

  it("builds hcsshim's sandbox-spec URLs", () => {
    expect(pathJoin("sandbox-spec/vm/v2/Spec", "Spec")).toBe("sandbox-spec/vm/v2/Spec/Spec");
    expect(pathJoin("sandbox-spec/vm/v2/StatedState", "StatedState")).toBe(
      "sandbox-spec/vm/v2/StatedState/StatedState",
    );
  });

  it("differs from node:path where Go does", () => {
    // posix.join() gives "." and keeps the trailing slash; Go does neither.
    expect(pathJoin()).toBe("");
    expect(pathJoin("a/", "/b/")).toBe("a/b");
    // Go collapses the scheme's double slash too.
    expect(pathJoin("https://types.example", "T")).toBe("https:/types.example/T");
    expect(pathJoin("types.containerd.io", "..", "x")).toBe("x");
  });
});
