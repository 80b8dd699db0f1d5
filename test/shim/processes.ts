// Waiting for processes the tests did not start themselves (detached shim servers).

/** Resolves once `pid` is gone: checked every 20 ms, bounded by the test's timeout. */
export async function gone(pid: number): Promise<void> {
  for (;;) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
