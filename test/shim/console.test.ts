// The reference shim's terminal plumbing: a pty master arriving over the
// console socket as SCM_RIGHTS (sent here as runc sends it, with the
// project's own sendmsg from the QEMU backend), ResizePty reaching the pty
// (read back with stty on the slave), and a connection that sends no
// descriptor failing with ConsoleError. A real pty from /dev/ptmx; runc's own
// side is in test/interop/shim/ctr-run.test.ts (`ctr run -t`).
import { execFileSync } from "node:child_process";
import { closeSync, constants, mkdtempSync, openSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import koffi from "koffi";
import { afterEach, beforeEach, expect, it } from "vitest";
import { sendWithFd } from "../../src/fd-passing.js";
import { type Console, ConsoleError, ConsoleSocket } from "../../src/shim/reference/console.js";

const libc = koffi.load(null);
const unlockpt = libc.func("int unlockpt(int fd)") as (fd: number) => number;
const ptsname = libc.func("char *ptsname(int fd)") as (fd: number) => string;

let dir: string;
let master: number;
let slave: string;
const open: { close(): void }[] = [];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "console-"));
  master = openSync("/dev/ptmx", constants.O_RDWR | constants.O_NOCTTY);
  expect(unlockpt(master)).toBe(0);
  slave = ptsname(master);
});
afterEach(() => {
  for (const o of open.splice(0)) o.close();
  closeSync(master);
  rmSync(dir, { recursive: true, force: true });
});

function dial(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(path, () => resolve(s));
    s.once("error", reject);
  });
}

async function consoleSocket(): Promise<ConsoleSocket> {
  const cs = await ConsoleSocket.listen(dir);
  open.push(cs);
  return cs;
}

it("receives the pty master runc sends, and ResizePty sets the terminal's size", async () => {
  const cs = await consoleSocket();
  const runc = await dial(cs.path);
  open.push({ close: () => runc.destroy() });
  await sendWithFd(runc, Buffer.from("/dev/ptmx"), master);
  const pty: Console = await cs.receive();
  open.push(pty);
  expect(pty.fd).not.toBe(master); // a descriptor of its own for the same pty
  await pty.resize(77, 33);
  expect(execFileSync("stty", ["-F", slave, "size"], { encoding: "utf8" }).trim()).toBe("33 77");
  await pty.resize(120, 40);
  expect(execFileSync("stty", ["-F", slave, "size"], { encoding: "utf8" }).trim()).toBe("40 120");
});

it("fails with ConsoleError when the connection carries no descriptor", async () => {
  const cs = await consoleSocket();
  const peer = await dial(cs.path);
  open.push({ close: () => peer.destroy() });
  peer.write("/dev/ptmx");
  await expect(cs.receive()).rejects.toBeInstanceOf(ConsoleError);
});
