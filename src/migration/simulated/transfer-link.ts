/**
 * Opening the memory-transfer connection an endpoint descriptor names: the
 * listening side binds at CreateDuplicateSocket and accepts one connection
 * that proves the token; the connecting side dials during TransferSandbox
 * (retrying until the listener is there) and introduces itself.
 *
 * @module
 */
import { timingSafeEqual } from "node:crypto";
import { createServer, Socket, type Server } from "node:net";
import { Code } from "../../code.js";
import { TtrpcError } from "../../ttrpc-error.js";
import { parseHostPort, type EndpointDescriptor } from "./endpoint-descriptor.js";
import { encodeFrame, FrameReader, MessageType, WireError } from "./wire-protocol.js";

export type Side = "source" | "destination";
const SIDE_CODE: Record<Side, number> = { source: 1, destination: 2 };

export interface Link {
  readonly socket: Socket;
  readonly reader: FrameReader;
}

function netTarget(d: EndpointDescriptor): { path: string } | { host: string; port: number } {
  if (d.transport === "unix") return { path: d.address };
  const hp = parseHostPort(d.address);
  if (typeof hp === "string") throw new TtrpcError(`protocol_info: ${hp}`, Code.InvalidArgument);
  return hp;
}

// Connections that arrive before acceptPeer runs (the peer's TransferSandbox
// may come first) wait here.
const early = new WeakMap<Server, Socket[]>();

/** Binds the listener of a `listen` descriptor; INVALID_ARGUMENT when the address is unusable. */
export function bindListener(d: EndpointDescriptor): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer({ pauseOnConnect: true });
    const queue: Socket[] = [];
    early.set(server, queue);
    const hold = (socket: Socket) => {
      socket.on("error", () => {});
      queue.push(socket);
    };
    server.on("connection", hold);
    server.once("error", (err: NodeJS.ErrnoException) => {
      server.close();
      reject(
        new TtrpcError(
          `protocol_info: cannot listen on ${d.transport} ${d.address}: ${err.code ?? err.message}`,
          Code.InvalidArgument,
          { cause: err },
        ),
      );
    });
    server.listen(netTarget(d), () => resolve(server));
  });
}

/**
 * Accepts the one connection whose HELLO carries the descriptor's token
 * and session number; others are dropped. Closes the listener once done
 * (successfully or not).
 */
export async function acceptPeer(
  server: Server,
  d: EndpointDescriptor,
  side: Side,
  signal: AbortSignal,
  maxPayload: number,
): Promise<Link> {
  const pending = new Set<Socket>();
  try {
    return await new Promise<Link>((resolve, reject) => {
      const onAbort = () => reject(signal.reason instanceof Error ? signal.reason : new WireError("aborted"));
      if (signal.aborted) return onAbort();
      signal.addEventListener("abort", onAbort, { once: true });
      const take = (socket: Socket) => {
        socket.resume();
        pending.add(socket);
        socket.on("error", () => {});
        const reader = new FrameReader(socket, { maxPayload });
        const hello = setTimeout(() => socket.destroy(), 10_000);
        reader.next().then(
          (frame) => {
            clearTimeout(hello);
            const p = frame.payload;
            const ok =
              frame.type === MessageType.Hello &&
              p.length === 21 &&
              timingSafeEqual(p.subarray(0, 16), d.token) &&
              p.readUInt32BE(16) === d.sessionNumber &&
              p[20] !== SIDE_CODE[side];
            if (!ok) {
              socket.destroy();
              pending.delete(socket);
              return;
            }
            pending.delete(socket);
            signal.removeEventListener("abort", onAbort);
            socket.setNoDelay(true);
            socket.write(encodeFrame(MessageType.HelloAck, Buffer.from([SIDE_CODE[side]])));
            resolve({ socket, reader });
          },
          () => {
            clearTimeout(hello);
            socket.destroy();
            pending.delete(socket);
          },
        );
      };
      server.removeAllListeners("connection");
      for (const socket of early.get(server)?.splice(0) ?? []) take(socket);
      server.on("connection", take);
    });
  } finally {
    for (const s of pending) s.destroy();
    for (const s of early.get(server)?.splice(0) ?? []) s.destroy();
    // Stop listening; the accepted connection stays (close's callback would wait for it).
    server.close();
  }
}

/**
 * Closes a listener no acceptPeer took (the transfer never started): the
 * connections it holds go too. They are paused, so they would never see
 * their peer leave, and `close` alone would wait for them for ever.
 */
export function closeListener(server: Server): Promise<void> {
  for (const s of early.get(server)?.splice(0) ?? []) s.destroy();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** Dials the listener (retrying while it is not there yet), proves the token, waits for the answer. */
export async function connectPeer(
  d: EndpointDescriptor,
  side: Side,
  signal: AbortSignal,
  maxPayload: number,
): Promise<Link> {
  let delay = 5;
  for (;;) {
    if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new WireError("aborted");
    const socket = await dialOnce(d, signal).catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ECONNREFUSED" || err.code === "ENOENT") return undefined;
      throw new WireError(`cannot connect to ${d.transport} ${d.address}: ${err.code ?? err.message}`);
    });
    if (socket !== undefined) {
      const reader = new FrameReader(socket, { maxPayload });
      const hello = Buffer.alloc(21);
      hello.set(d.token, 0);
      hello.writeUInt32BE(d.sessionNumber, 16);
      hello[20] = SIDE_CODE[side];
      socket.write(encodeFrame(MessageType.Hello, hello));
      const onAbort = () => socket.destroy();
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        const frame = await reader.next();
        if (frame.type !== MessageType.HelloAck || frame.payload[0] === SIDE_CODE[side]) {
          throw new WireError("memory stream: the peer did not acknowledge the hello");
        }
        return { socket, reader };
      } catch (err) {
        socket.destroy();
        if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : err;
        throw err instanceof WireError
          ? new WireError(`the listener refused the connection (wrong token or session?): ${err.message}`)
          : err;
      } finally {
        signal.removeEventListener("abort", onAbort);
      }
    }
    await new Promise<void>((resolve) => {
      const onAbort = () => {
        clearTimeout(t);
        resolve();
      };
      const t = setTimeout(() => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      }, delay);
      signal.addEventListener("abort", onAbort, { once: true });
    });
    delay = Math.min(delay * 2, 200);
  }
}

function dialOnce(d: EndpointDescriptor, signal: AbortSignal): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    const onAbort = () => {
      socket.destroy();
      reject(new WireError("aborted"));
    };
    signal.addEventListener("abort", onAbort, { once: true });
    socket.once("error", (err) => {
      signal.removeEventListener("abort", onAbort);
      socket.destroy();
      reject(err);
    });
    socket.connect(netTarget(d), () => {
      signal.removeEventListener("abort", onAbort);
      socket.removeAllListeners("error");
      socket.on("error", () => {});
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}
