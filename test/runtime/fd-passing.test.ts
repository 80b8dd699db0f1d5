// SCM_RIGHTS over a real unix socket pair (src/fd-passing.ts): a descriptor
// sent arrives as a descriptor of the same file, a message without one is
// told apart, a receive that starts before the sender has written waits for
// it, and each way a send cannot happen fails with FdPassingError.
import { execFileSync } from "node:child_process";
import { closeSync, constants, fstatSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer, type Server, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, expect, it } from "vitest";
import { FdPassingError, loadFdPassing, receiveFd, sendWithFd } from "../../src/fd-passing.js";

let dir: string;
let server: Server;
const cleanup: (() => void)[] = [];

/** A connected pair: `sender` dialed, `receiver` accepted and left unread (pauseOnConnect). */
async function pair(allowHalfOpen = false): Promise<{ sender: Socket; receiver: Socket }> {
  const accepted = new Promise<Socket>((resolve) => server.once("connection", resolve));
  const sender = await new Promise<Socket>((resolve, reject) => {
    const s = connect({ path: join(dir, "s.sock"), allowHalfOpen }, () => resolve(s));
    s.once("error", reject);
  });
  const receiver = await accepted;
  cleanup.push(
    () => sender.destroy(),
    () => receiver.destroy(),
  );
  return { sender, receiver };
}

function openFile(name: string): number {
  writeFileSync(join(dir, name), name);
  const fd = openSync(join(dir, name), "r");
  cleanup.push(() => closeSync(fd));
  return fd;
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "fd-passing-"));
  server = createServer({ pauseOnConnect: true });
  await new Promise<void>((resolve) => server.listen(join(dir, "s.sock"), resolve));
});
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) c();
  await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

it("a descriptor sent arrives as a new descriptor of the same file, twice in a row", async () => {
  const { sender, receiver } = await pair();
  for (const name of ["a.txt", "b.txt"]) {
    const fd = openFile(name);
    await sendWithFd(sender, Buffer.from(name), fd);
    const got = await receiveFd(receiver);
    expect(got).toBeTypeOf("number");
    cleanup.push(() => closeSync(got!));
    expect(got).not.toBe(fd);
    expect(fstatSync(got!).ino).toBe(fstatSync(fd).ino);
  }
});

it("a receive started before the sender wrote waits for the message", async () => {
  const { sender, receiver } = await pair();
  const fd = openFile("late.txt");
  const receiving = receiveFd(receiver);
  // The receive has found nothing yet (EAGAIN) and waits; the send comes after.
  await sendWithFd(sender, Buffer.from("late"), fd);
  const got = await receiving;
  cleanup.push(() => closeSync(got!));
  expect(fstatSync(got!).ino).toBe(fstatSync(fd).ino);
});

it("a message without a descriptor, or a peer gone without one, is received as undefined", async () => {
  const { sender, receiver } = await pair();
  sender.write("no descriptor");
  expect(await receiveFd(receiver)).toBeUndefined();
  const closed = await pair();
  const gone = new Promise((resolve) => closed.sender.once("close", resolve));
  closed.sender.destroy();
  await gone;
  expect(await receiveFd(closed.receiver)).toBeUndefined(); // recvmsg read 0 bytes: the end
});

it("fails with the errno when the descriptor is not a socket", async () => {
  const fifo = join(dir, "fifo");
  execFileSync("mkfifo", [fifo]);
  const pipe = new Socket({ fd: openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK), readable: false });
  cleanup.push(() => pipe.destroy());
  await expect(receiveFd(pipe)).rejects.toThrow(/^recvmsg failed \(errno 88\)$/); // ENOTSOCK
});

it("refuses a socket that is not connected, and one with writes still queued", async () => {
  const fd = openFile("x.txt");
  await expect(sendWithFd(new Socket(), Buffer.from("x"), fd)).rejects.toThrow(FdPassingError);
  await expect(receiveFd(new Socket())).rejects.toThrow(/not connected/);
  const { sender } = await pair();
  sender.cork();
  sender.write("queued");
  await expect(sendWithFd(sender, Buffer.from("x"), fd)).rejects.toThrow(/queued writes/);
  sender.uncork();
});

it("fails with the errno when the peer is gone", async () => {
  // Half-open, so the sender keeps its descriptor after the peer's end.
  const { sender, receiver } = await pair(true);
  const ended = new Promise((resolve) => sender.once("end", resolve));
  sender.on("error", () => undefined);
  receiver.resume(); // read, so the end of the connection is seen
  receiver.end();
  await ended;
  receiver.destroy();
  await new Promise((resolve) => receiver.once("close", resolve));
  await expect(sendWithFd(sender, Buffer.from("x"), openFile("y.txt"))).rejects.toThrow(
    /sendmsg failed \(errno 32\)/, // EPIPE
  );
});

it.each([
  ["platform", "darwin", "darwin/x64"],
  ["arch", "ia32", "linux/ia32"],
] as const)("says which platforms it supports: not %s %s", async (key, value, named) => {
  const own = Object.getOwnPropertyDescriptor(process, key)!;
  Object.defineProperty(process, key, { value });
  try {
    const e = await loadFdPassing().catch((err: unknown) => err);
    expect(e).toBeInstanceOf(FdPassingError);
    expect((e as Error).name).toBe("FdPassingError");
    expect((e as Error).message).toBe(`descriptor passing is implemented for Linux x64/arm64, not ${named}`);
  } finally {
    Object.defineProperty(process, key, own);
  }
});
