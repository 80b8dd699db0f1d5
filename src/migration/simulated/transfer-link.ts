/**
 * Opening the memory-transfer connection an endpoint descriptor names: the
 * listening side binds at CreateDuplicateSocket and accepts one connection
 * that proves the token; the connecting side dials during TransferSandbox
 * (retrying until the listener is there) and introduces itself.
 *
 * A transfer may use several connections ("channels", like QEMU's multifd):
 * the source decides how many. Every connection proves the token and names
 * its channel; the side that does not know the count learns it from the
 * source's first hello or acknowledgement.
 *
 * @module
 */
import { timingSafeEqual } from "node:crypto";
import { connect, createServer, type Server, type Socket } from "node:net";
import { Code } from "../../code.js";
import { adoptForDirectReads } from "../../direct-reads.js";
import { listenBacklog } from "../../listen-backlog.js";
import { TtrpcError } from "../../ttrpc-error.js";
import { parseHostPort, type EndpointDescriptor } from "../endpoint-descriptor.js";
import { DirectFrameReader, type FrameSource, FrameReader } from "./frame-io.js";
import {
  type AbortReason,
  decodeHello,
  decodeHelloAck,
  encodeAbort,
  encodeHello,
  encodeHelloAck,
  MessageType,
  type Hello,
  type Sender,
  WireError,
} from "./wire-protocol.js";

export type Side = Sender;

export interface Link {
  readonly socket: Socket;
  readonly reader: FrameSource;
}

/** The most channels a transfer may use. */
export const MAX_CHANNELS = 16;

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
    server.listen({ ...netTarget(d), backlog: listenBacklog() }, () => resolve(server));
  });
}

/**
 * Accepts the connections whose HELLO carries the descriptor's token and
 * session number, one per channel (`channels` on the source; the
 * destination learns the count from the source's hello); others are
 * dropped. Closes the listener once done (successfully or not).
 */
export async function acceptPeer(
  server: Server,
  d: EndpointDescriptor,
  side: Side,
  signal: AbortSignal,
  maxPayload: number,
  channels?: number,
): Promise<Link[]> {
  const acceptor = new ChannelAcceptor(d, side, maxPayload, channels ?? 0);
  try {
    return await new Promise<Link[]>((resolve, reject) => {
      const onAbort = () => reject(abortError(signal, new WireError("aborted")));
      if (signal.aborted) return onAbort();
      signal.addEventListener("abort", onAbort, { once: true });
      acceptor.onComplete = (links) => {
        signal.removeEventListener("abort", onAbort);
        resolve(links);
      };
      const take = (incoming: Socket) => acceptor.take(incoming);
      server.removeAllListeners("connection");
      for (const socket of early.get(server)?.splice(0) ?? []) take(socket);
      server.on("connection", take);
    });
  } catch (err) {
    acceptor.destroyLinks();
    throw err;
  } finally {
    acceptor.destroyPending();
    for (const s of early.get(server)?.splice(0) ?? []) s.destroy();
    // Stop listening; the accepted connections stay (close's callback would wait for them).
    server.close();
  }
}

/** The listening side's channels as they arrive: each proves the token and names its channel. */
class ChannelAcceptor {
  /** The channels, by number, as they are accepted. */
  readonly #links: Link[] = [];
  /** Connections whose hello has not come yet. */
  readonly #pending = new Set<Socket>();
  /** Channels to accept; 0 while not known. */
  #expected: number;
  #accepted = 0;
  /** Called once every channel is accepted. */
  onComplete: (links: Link[]) => void = () => {};

  constructor(
    private readonly d: EndpointDescriptor,
    private readonly side: Side,
    private readonly maxPayload: number,
    expected: number,
  ) {
    this.#expected = expected;
  }

  /** A new connection: it gets ten seconds to say hello. */
  take(incoming: Socket): void {
    const { socket, reader } = this.#reading(incoming);
    this.#pending.add(socket);
    socket.on("error", () => {});
    const hello = setTimeout(() => socket.destroy(), 10_000);
    reader.next().then(
      (frame) => {
        clearTimeout(hello);
        const channel = frame.type === MessageType.Hello ? this.#channelOf(frame.payload) : undefined;
        if (channel === undefined) return this.#drop(socket);
        this.#pending.delete(socket);
        this.#accept(channel, { socket, reader });
      },
      () => {
        clearTimeout(hello);
        this.#drop(socket);
      },
    );
  }

  destroyLinks(): void {
    for (const l of this.#links) l?.socket.destroy();
  }

  destroyPending(): void {
    for (const s of this.#pending) s.destroy();
  }

  // Moved to a socket that reads frames (pages too) straight into place, as a
  // dialed one does; else read as Node reads.
  #reading(incoming: Socket): Link {
    const direct = new DirectFrameReader({ maxPayload: this.maxPayload });
    const adopted = adoptForDirectReads(incoming, direct.onread);
    if (adopted === undefined) {
      incoming.resume();
      return { socket: incoming, reader: new FrameReader(incoming, { maxPayload: this.maxPayload }) };
    }
    direct.attach(adopted);
    return { socket: adopted, reader: direct };
  }

  /** The channel a hello claims, if it proves the token and fits the count; else undefined. */
  #channelOf(payload: Uint8Array): number | undefined {
    let h: Hello;
    try {
      h = decodeHello(payload);
    } catch {
      return undefined;
    }
    const d = this.d;
    if (!timingSafeEqual(h.token, d.token) || h.sessionNumber !== d.sessionNumber || h.sender === this.side)
      return undefined;
    const { channel, channels: theirs } = h;
    if (this.#expected === 0 && theirs >= 1 && theirs <= MAX_CHANNELS) this.#expected = theirs;
    const expected = this.#expected;
    const valid =
      (theirs === 0 || theirs === expected) &&
      (expected === 0 ? channel === 0 : channel < expected) &&
      this.#links[channel] === undefined;
    return valid ? channel : undefined;
  }

  #accept(channel: number, link: Link): void {
    link.socket.setNoDelay(true);
    link.socket.write(encodeHelloAck({ sender: this.side, channels: this.#expected }));
    this.#links[channel] = link;
    this.#accepted++;
    // Without a count yet (a destination connector dials channel 0
    // first and learns it from our ack), only the source knows.
    if (this.#expected === 0 && this.side === "destination") this.#expected = 1;
    if (this.#accepted === this.#expected) this.onComplete(this.#links);
  }

  #drop(socket: Socket): void {
    socket.destroy();
    this.#pending.delete(socket);
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

/**
 * Dials the listener (retrying while it is not there yet) once per channel,
 * proves the token on each, waits for the answers. `channels` on the source;
 * the destination learns the count from the first acknowledgement.
 */
export async function connectPeer(
  d: EndpointDescriptor,
  side: Side,
  signal: AbortSignal,
  maxPayload: number,
  channels?: number,
): Promise<Link[]> {
  const first = await connectChannel(d, side, signal, maxPayload, 0, channels ?? 0);
  const count = channels ?? first.channels;
  if (count < 1 || count > MAX_CHANNELS) {
    first.link.socket.destroy();
    throw new WireError(`memory stream: the source asked for ${count} channels (1 … ${MAX_CHANNELS})`);
  }
  const rest = await Promise.allSettled(
    Array.from({ length: count - 1 }, (_, i) => connectChannel(d, side, signal, maxPayload, i + 1, count)),
  );
  const links = [first.link, ...rest.flatMap((r) => (r.status === "fulfilled" ? [r.value.link] : []))];
  const failed = rest.find((r) => r.status === "rejected");
  if (failed !== undefined) {
    for (const l of links) l.socket.destroy();
    throw (failed as PromiseRejectedResult).reason;
  }
  return links;
}

/** Dials one channel (retrying while the listener is not there yet), proves the token, waits for the answer. */
async function connectChannel(
  d: EndpointDescriptor,
  side: Side,
  signal: AbortSignal,
  maxPayload: number,
  channel: number,
  channels: number,
): Promise<{ link: Link; channels: number }> {
  let delay = 5;
  for (;;) {
    if (signal.aborted) throw abortError(signal, new WireError("aborted"));
    const reader = new DirectFrameReader({ maxPayload });
    const socket = await dialOnce(d, signal, reader).catch((err: NodeJS.ErrnoException) => {
      // Aborted mid-connect: the caller's reason, as at every other stage.
      if (signal.aborted) throw abortError(signal, err);
      if (err.code === "ECONNREFUSED" || err.code === "ENOENT") return undefined;
      throw new WireError(`cannot connect to ${d.transport} ${d.address}: ${err.code ?? err.message}`);
    });
    if (socket !== undefined) {
      reader.attach(socket);
      socket.write(encodeHello({ token: d.token, sessionNumber: d.sessionNumber, sender: side, channel, channels }));
      const onAbort = () => socket.destroy();
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        const frame = await reader.next();
        const ack = frame.type === MessageType.HelloAck ? decodeHelloAck(frame.payload) : undefined;
        if (ack === undefined || ack.sender === side)
          throw new WireError("memory stream: the peer did not acknowledge the hello");
        return { link: { socket, reader }, channels: ack.channels };
      } catch (err) {
        socket.destroy();
        if (signal.aborted) throw abortError(signal, err);
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

/** Why an aborted step ends: the caller's reason, when it is an Error. */
function abortError(signal: AbortSignal, fallback: unknown): unknown {
  return signal.reason instanceof Error ? signal.reason : fallback;
}

function dialOnce(d: EndpointDescriptor, signal: AbortSignal, reader: DirectFrameReader): Promise<Socket> {
  return new Promise((resolve, reject) => {
    // The reader names where each read lands (only a socket made with onread allows it).
    const target = netTarget(d);
    const socket = connect(
      "path" in target
        ? { path: target.path, onread: reader.onread }
        : { host: target.host, port: target.port, onread: reader.onread },
      () => {
        signal.removeEventListener("abort", onAbort);
        socket.removeAllListeners("error");
        socket.on("error", () => {});
        socket.setNoDelay(true);
        resolve(socket);
      },
    );
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
  });
}

/** Best effort: tell the peer why this side stops, then close. */
export async function sendAbort(link: Link, reason: AbortReason, message: string): Promise<void> {
  if (link.socket.destroyed) return;
  await new Promise<void>((resolve) => {
    link.socket.end(encodeAbort({ reason, message }), () => resolve());
    setTimeout(resolve, 200).unref();
  });
}
