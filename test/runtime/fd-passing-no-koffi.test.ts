// Descriptor passing without koffi: koffi is installed here (it is an
// optional dependency), so its absence is stood in for by a mock of the
// package whose import fails, as `import("koffi")` does where it is missing;
// the project's own loader (optional-koffi.ts) runs as it is.
import { expect, it, vi } from "vitest";

const attempts = vi.hoisted(() => ({ count: 0 }));
vi.mock("koffi", () => {
  attempts.count++;
  throw new Error("Cannot find package 'koffi'");
});

/** The messages of an error's chain of causes (vitest wraps a failed mock import in one of its own). */
function causes(e: unknown): string[] {
  const out: string[] = [];
  for (let c = (e as Error).cause; c instanceof Error; c = c.cause) out.push(c.message);
  return out;
}

const { FdPassingError, loadFdPassing } = await import("../../src/fd-passing.js");

it("fails with FdPassingError naming the missing dependency, and tries again on the next call", async () => {
  for (const n of [1, 2]) {
    const e = await loadFdPassing().catch((err: unknown) => err);
    expect(e).toBeInstanceOf(FdPassingError);
    expect((e as Error).message).toBe("passing a descriptor needs the optional dependency koffi (npm install koffi)");
    expect(causes(e)).toContain("Cannot find package 'koffi'");
    expect(attempts.count).toBe(n);
  }
});
