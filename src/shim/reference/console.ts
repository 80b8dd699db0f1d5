// A container's terminal. With `terminal: true`, runc makes the pty itself and
// sends its master end over a unix socket named by `--console-socket`, as
// SCM_RIGHTS beside the pty's name. Node's `net` drops descriptors that arrive
// that way, so the accepted connection is left unread (`pauseOnConnect`) and
// fd-passing.ts calls recvmsg(2) on it; ResizePty is ioctl(TIOCSWINSZ)
// on the master. The master is then an ordinary stream (a TTY handle) that
// ProcessIo copies to and from containerd's FIFOs, as Go's shim does.
import { randomBytes } from "node:crypto";
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { ReadStream } from "node:tty";
import { loadFdPassing, receiveFd } from "../../fd-passing.js";
import { koffiBinding } from "../../optional-koffi.js";

/** Thrown when a terminal cannot be made (no koffi, runc sent no descriptor). */
export class ConsoleError extends Error {
  override readonly name = "ConsoleError";
}

type Ioctl = (fd: number, request: number, type: string, arg: Buffer) => number;

const TIOCSWINSZ = 0x5414;

const loadIoctl = koffiBinding(
  (koffi) => ({
    ioctl: koffi.load(null).func("int ioctl(int fd, unsigned long request, ...)") as Ioctl,
    errno: () => koffi.errno(),
  }),
  (cause) => new ConsoleError("a terminal needs the optional dependency koffi (npm install koffi)", { cause }),
);

/** The socket runc connects to with the pty master; one per process with a terminal. */
export class ConsoleSocket {
  private constructor(
    readonly path: string,
    private readonly server: Server,
    private readonly first: Promise<Socket>,
  ) {}

  /** Listens on a fresh path in `dir` (the bundle: short, and the shim's own). */
  static async listen(dir: string): Promise<ConsoleSocket> {
    // Fail before runc is asked to use the socket.
    await Promise.all([loadFdPassing(), loadIoctl()]).catch((e: unknown) => {
      throw e instanceof ConsoleError ? e : new ConsoleError("a terminal needs descriptor passing", { cause: e });
    });
    const path = join(dir, `console-${randomBytes(4).toString("hex")}.sock`);
    const server = createServer({ pauseOnConnect: true });
    const first = new Promise<Socket>((resolve) => server.once("connection", resolve));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, () => resolve());
    });
    return new ConsoleSocket(path, server, first);
  }

  /** The pty master runc sent (after `runc create` or `runc exec` returned). */
  async receive(): Promise<Console> {
    const socket = await this.first;
    try {
      const fd = await receiveFd(socket);
      if (fd === undefined) throw new ConsoleError("runc sent no descriptor on the console socket");
      return new Console(fd);
    } finally {
      socket.destroy();
    }
  }

  close(): void {
    this.server.close();
  }
}

/** A pty master: a stream both ways, and its window size. */
export class Console {
  /** Reads what the container writes to its terminal; writes reach the container's input. */
  readonly stream: ReadStream;

  constructor(readonly fd: number) {
    this.stream = new ReadStream(fd);
  }

  /** ResizePty: the terminal's size in characters. */
  async resize(width: number, height: number): Promise<void> {
    const { ioctl, errno } = await loadIoctl();
    const size = Buffer.alloc(8); // struct winsize { ws_row, ws_col, ws_xpixel, ws_ypixel }: four u16
    size.writeUInt16LE(height, 0);
    size.writeUInt16LE(width, 2);
    if (ioctl(this.fd, TIOCSWINSZ, "void *", size) !== 0)
      throw new ConsoleError(`TIOCSWINSZ failed (errno ${errno()})`);
  }

  close(): void {
    this.stream.destroy(); // closes the descriptor with its handle
  }
}
