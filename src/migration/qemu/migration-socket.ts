// Where a QEMU migration stream goes, from the endpoint descriptor
// CreateDuplicateSocket received (the simulated backend's TMEP descriptor:
// transport, address, role, token).
//
// - "uri": QEMU makes the connection itself. The destination's QEMU listens
//   (`migrate-incoming unix:PATH` / `tcp:HOST:PORT`) and the source's
//   connects (`migrate`). QEMU cannot check the descriptor's token then.
// - "fd": the shim makes the connection, as hcsshim's shim hands HCS a
//   duplicated socket: the listening side accepts, the connecting side
//   dials, the connector sends the 16-byte token and the listener checks it,
//   then each side passes its connected socket to its QEMU with QMP `getfd`
//   (SCM_RIGHTS) and uses URI `fd:NAME`. The listener answers one byte once
//   its QEMU holds the socket, and the connector starts its QEMU only after
//   that byte: Node stops reading each socket before it is handed over, so no
//   byte of the stream is ever read by Node instead of QEMU.
import { timingSafeEqual } from "node:crypto";
import { rm } from "node:fs/promises";
import { connect as netConnect, createServer, type Server, type Socket } from "node:net";
import { Code } from "../../code.js";
import { TtrpcError } from "../../ttrpc-error.js";
import { parseHostPort, type EndpointDescriptor } from "../endpoint-descriptor.js";

/** How the migration stream reaches QEMU. */
export type QemuSocketMode = "uri" | "fd";

/** The QEMU URI of a descriptor's address (`unix:PATH` or `tcp:HOST:PORT`). */
export function migrationUri(d: EndpointDescriptor): string {
  return d.transport === "unix" ? `unix:${d.address}` : `tcp:${d.address}`;
}

/** The descriptor problems QEMU cannot work with in a mode, as an INVALID_ARGUMENT; undefined when fine. */
export function endpointProblem(
  d: EndpointDescriptor,
  side: "source" | "destination",
  mode: QemuSocketMode,
): TtrpcError | undefined {
  if (mode !== "uri") return undefined;
  const listens = d.role === "listen";
  if (listens !== (side === "destination"))
    return new TtrpcError(
      `protocol_info: with QEMU URIs the destination listens and the source connects (this ${side} would ${d.role})`,
      Code.InvalidArgument,
    );
  return undefined;
}

/**
 * The listening side's socket (fd mode), bound at CreateDuplicateSocket so
 * the peer can dial as soon as its own transfer starts, which may be before
 * this side's: connections are kept from the moment of binding.
 */
export class MigrationListener {
  readonly #server: Server;
  readonly #arrived: Socket[] = [];
  #onArrival: ((socket: Socket) => void) | undefined;

  private constructor(server: Server) {
    this.#server = server;
    server.on("connection", (socket: Socket) => {
      if (this.#onArrival !== undefined) this.#onArrival(socket);
      else this.#arrived.push(socket);
    });
  }

  static async bind(d: EndpointDescriptor): Promise<MigrationListener> {
    const server = createServer({ pauseOnConnect: true });
    if (d.transport === "unix") await rm(d.address, { force: true });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      if (d.transport === "unix") server.listen(d.address, resolve);
      else {
        const hp = parseHostPort(d.address) as { host: string; port: number };
        server.listen(hp.port, hp.host, resolve);
      }
    });
    return new MigrationListener(server);
  }

  /** Accepts connections until one presents the token; others are closed. */
  accept(token: Uint8Array, signal: AbortSignal): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const finish = (settle: () => void) => {
        this.#onArrival = undefined;
        signal.removeEventListener("abort", onAbort);
        settle();
      };
      const onAbort = () => finish(() => reject(signal.reason));
      const check = (socket: Socket) => {
        readExactly(socket, token.length, signal).then(
          (got) => {
            if (!timingSafeEqual(got, token)) return void socket.destroy();
            stopReading(socket);
            finish(() => resolve(socket));
          },
          () => socket.destroy(),
        );
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener("abort", onAbort, { once: true });
      this.#onArrival = check;
      for (const socket of this.#arrived.splice(0)) check(socket);
    });
  }

  /** Stops listening; connections not accepted are closed. */
  async close(): Promise<void> {
    for (const socket of this.#arrived.splice(0)) socket.destroy();
    this.#onArrival = undefined;
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/**
 * Dials the listening side, retrying while it is not up yet, sends the
 * token and waits for the listener's one-byte answer (its QEMU holds the
 * socket now).
 */
export async function dialWithToken(d: EndpointDescriptor, signal: AbortSignal): Promise<Socket> {
  for (let attempt = 0; ; attempt++) {
    signal.throwIfAborted();
    let socket: Socket | undefined;
    try {
      socket = await dialOnce(d);
    } catch (e) {
      if (attempt >= 200) throw e;
    }
    if (socket !== undefined) {
      try {
        socket.pause();
        socket.write(d.token);
        await readExactly(socket, 1, signal);
        stopReading(socket);
        return socket;
      } catch (e) {
        socket.destroy();
        throw e;
      }
    }
    // The peer binds in its own CreateDuplicateSocket; orchestrators call the hosts in turn.
    await new Promise((r) => setTimeout(r, 50));
  }
}

function dialOnce(d: EndpointDescriptor): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const hp = d.transport === "tcp" ? (parseHostPort(d.address) as { host: string; port: number }) : undefined;
    const socket = hp === undefined ? netConnect(d.address) : netConnect(hp.port, hp.host);
    socket.once("connect", () => {
      socket.off("error", reject);
      resolve(socket);
    });
    socket.once("error", reject);
  });
}

/** Reads exactly n bytes from a paused socket, leaving it paused. */
function readExactly(socket: Socket, n: number, signal: AbortSignal): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let have = 0;
    const done = (e?: Error) => {
      socket.off("readable", onReadable);
      socket.off("close", onClose);
      signal.removeEventListener("abort", onAbort);
      if (e !== undefined) reject(e);
    };
    const onReadable = () => {
      for (;;) {
        const chunk = socket.read(Math.min(n - have, socket.readableLength) || undefined) as Buffer | null;
        if (chunk === null) return;
        chunks.push(chunk);
        have += chunk.length;
        if (have >= n) {
          done();
          const all = Buffer.concat(chunks);
          if (all.length > n) socket.unshift(all.subarray(n));
          return resolve(all.subarray(0, n));
        }
      }
    };
    const onClose = () => done(new Error("closed before the token"));
    const onAbort = () => done(signal.reason as Error);
    socket.on("readable", onReadable);
    socket.once("close", onClose);
    signal.addEventListener("abort", onAbort, { once: true });
    onReadable();
  });
}

// Node keeps reading a socket it has read from; the handle's readStop is
// the only way to stop the kernel's bytes from landing in Node's buffer.
function stopReading(socket: Socket): void {
  (socket as unknown as { _handle?: { readStop?: () => void } })._handle?.readStop?.();
}

/**
 * Hands a connected socket to QEMU (`getfd` is the QMP call with the
 * descriptor attached) and closes Node's copy: QEMU holds its own. With
 * `answer`, the listener's byte is written first (see the module comment).
 */
export async function handSocketToQemu(
  socket: Socket,
  getfd: (fd: number) => Promise<unknown>,
  answer = false,
): Promise<void> {
  try {
    const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
    if (typeof fd !== "number" || fd < 0) throw new Error("the migration socket is not connected");
    await getfd(fd);
    if (answer)
      await new Promise<void>((resolve, reject) => socket.write(Buffer.of(1), (e) => (e ? reject(e) : resolve())));
  } finally {
    socket.destroy();
  }
}
