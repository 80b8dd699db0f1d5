// Descriptor passing without koffi: koffi is installed here (it is an
// optional dependency), so its absence is stood in for by a loader that
// rejects, as `import("koffi")` does where it is missing.
import { expect, it, vi } from "vitest";

const attempts = vi.hoisted(() => ({ count: 0 }));
vi.mock("../../src/optional-koffi.js", () => ({
  loadKoffi: () => {
    attempts.count++;
    return Promise.reject(new Error("Cannot find package 'koffi'"));
  },
}));

const { FdPassingError, loadFdPassing } = await import("../../src/fd-passing.js");

it("fails with FdPassingError naming the missing dependency, and tries again on the next call", async () => {
  for (const n of [1, 2]) {
    const e = await loadFdPassing().catch((err: unknown) => err);
    expect(e).toBeInstanceOf(FdPassingError);
    expect((e as Error).message).toBe("passing a descriptor needs the optional dependency koffi (npm install koffi)");
    expect(((e as Error).cause as Error).message).toBe("Cannot find package 'koffi'");
    expect(attempts.count).toBe(n);
  }
});
