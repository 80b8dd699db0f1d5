// The serial console reader on a real file in a temp folder, written by the
// test as QEMU's `-serial file:` would: line splitting, waits, the end of a
// console and the poll. The VM suite reads real guests' consoles with it.
import { appendFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it, onTestFinished, vi } from "vitest";
import { SerialLog } from "ttrpc-es/migration/qemu";
import { tempDir } from "../../common.js";

function serial(): { log: SerialLog; path: string } {
  const path = join(tempDir(), "guest.serial");
  const log = new SerialLog(path);
  onTestFinished(() => log.close());
  return { log, path };
}

const reason = (p: Promise<unknown>) =>
  p.then(
    () => "resolved",
    (e: unknown) => e,
  );

describe("SerialLog", () => {
  it("splits LF and CRLF lines, holding a partial line until its end arrives", async () => {
    const { log, path } = serial();
    const heard: string[] = [];
    log.onLine((l) => heard.push(l));
    writeFileSync(path, "boot\r\ntick 1\ntick");
    await log.flush();
    expect(log.lines).toEqual(["boot", "tick 1"]);
    appendFileSync(path, " 2\n\ncaf\xe9\n", "latin1");
    await log.flush();
    expect(log.lines).toEqual(["boot", "tick 1", "tick 2", "", "café"]);
    expect(heard).toEqual(log.lines);
    expect(log.path).toBe(path);
  });

  it("reads nothing until QEMU has created the file", async () => {
    const { log, path } = serial();
    await log.flush();
    expect(log.lines).toEqual([]);
    writeFileSync(path, "late\n");
    await log.flush();
    expect(log.lines).toEqual(["late"]);
  });

  it("keeps the last 2000 lines", async () => {
    const { log, path } = serial();
    writeFileSync(path, Array.from({ length: 2001 }, (_, i) => `${i}\n`).join(""));
    await log.flush();
    expect(log.lines).toHaveLength(2000);
    expect(log.lines[0]).toBe("1");
    expect(log.lines.at(-1)).toBe("2000");
  });

  it("stops calling a listener once stopped", async () => {
    const { log, path } = serial();
    const heard: string[] = [];
    const stop = log.onLine((l) => heard.push(l));
    writeFileSync(path, "a\n");
    await log.flush();
    stop();
    appendFileSync(path, "b\n");
    await log.flush();
    expect(heard).toEqual(["a"]);
    expect(log.lines).toEqual(["a", "b"]);
  });

  it("lets waitFor take a line already printed, where nextLine waits for a new one", async () => {
    const { log, path } = serial();
    writeFileSync(path, "tick 1\n");
    await log.flush();
    await expect(log.waitFor((l) => l.startsWith("tick"))).resolves.toBe("tick 1");
    const next = log.nextLine((l) => l.startsWith("tick"));
    const waited = log.waitFor((l) => l === "tick 3");
    appendFileSync(path, "other\ntick 2\ntick 3\n");
    await log.flush();
    expect(await next).toBe("tick 2");
    expect(await waited).toBe("tick 3");
  });

  it("rejects a wait with the signal's reason, at once when already aborted", async () => {
    const { log, path } = serial();
    const ac = new AbortController();
    const waiting = log.nextLine(() => true, ac.signal);
    const stop = new Error("stop");
    ac.abort(stop);
    expect(await reason(waiting)).toBe(stop);
    expect(await reason(log.waitFor(() => true, AbortSignal.abort(stop)))).toBe(stop);
    // The aborted wait took no line: the next one goes to a new wait.
    const next = log.nextLine(() => true);
    writeFileSync(path, "x\n");
    await log.flush();
    expect(await next).toBe("x");
  });

  it("at its end reads what is left, then rejects waits no line read satisfies", async () => {
    const { log, path } = serial();
    const lastTick = log.nextLine((l) => l === "tick 9");
    const never = log.nextLine((l) => l === "never");
    writeFileSync(path, "tick 9\n");
    const gone = new Error("QEMU exited");
    await log.end(gone);
    expect(await lastTick).toBe("tick 9");
    expect(await reason(never)).toBe(gone);
    expect(await reason(log.nextLine(() => true))).toBe(gone);
    await expect(log.waitFor((l) => l === "tick 9")).resolves.toBe("tick 9");
    // A second end changes nothing: the first error stays.
    await log.end(new Error("again"));
    expect(await reason(log.waitFor((l) => l === "x"))).toBe(gone);
  });

  it("reads nothing more once closed", async () => {
    const { log, path } = serial();
    writeFileSync(path, "a\n");
    await log.flush();
    log.close();
    log.close();
    appendFileSync(path, "b\n");
    await log.flush();
    expect(log.lines).toEqual(["a"]);
  });

  it("follows the file every 100 ms by itself", async () => {
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
    onTestFinished(() => void vi.useRealTimers());
    const { log, path } = serial();
    writeFileSync(path, "polled\n");
    const line = log.nextLine(() => true);
    await vi.advanceTimersByTimeAsync(100);
    expect(await line).toBe("polled");
  });
});
