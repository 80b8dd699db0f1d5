import type { Duplex } from "node:stream";
import type { DescMessage } from "@bufbuild/protobuf";
import { Channel } from "./channel.js";
import { Code } from "./code.js";
import type { ConnectionSettings } from "./connection-settings.js";
import { Flags, MessageType, type Frame } from "./frame.js";
import type { QueueLimits } from "./message-queue.js";
import { encodeMessage, type EncodedMessage } from "./message-codec.js";
import type { Stream } from "./stream.js";
import { OversizedMessageError, TtrpcError } from "./ttrpc-error.js";

/** The role-specific half of a connection: what a client or a server does with frames. */
export interface StreamOwner<S extends Stream> {
  /** A frame, with its stream when the ID is in the table. */
  frame(frame: Frame, stream: S | undefined): void;
  /** A frame over the size limit arrived and was skipped unread. */
  oversized(error: OversizedMessageError, streamId: number, stream: S | undefined): void;
  /** The connection ended; every stream in the table has been closed with `error`. */
  closed(error: TtrpcError): void;
}

/** Bytes one stream may hold unread before it fails at once, whatever the grace period. */
function streamMaxBytes(maxMessageSize: number): number {
  return Math.max(4 * maxMessageSize, 16 << 20);
}

/**
 * The streams of one connection, for client and server alike: the table by
 * stream ID, routing of frames (oversized ones too) to their stream, the
 * close of every stream when the connection ends, and the send path
 * (encode within the size limit, write, wait for drain, close the send side).
 */
export class StreamTable<S extends Stream> {
  readonly channel: Channel;
  readonly limits: QueueLimits;
  /** The connection's settings, as its client or server resolved them. */
  readonly settings: ConnectionSettings;
  readonly #streams = new Map<number, S>();
  readonly #owner: StreamOwner<S>;

  constructor(socket: Duplex, owner: StreamOwner<S>, settings: ConnectionSettings) {
    this.#owner = owner;
    this.settings = settings;
    this.channel = new Channel(
      socket,
      {
        frame: (f) => owner.frame(f, this.#streams.get(f.streamId)),
        oversized: (id, _type, _flags, length) =>
          owner.oversized(new OversizedMessageError(length, settings.maxMessageSize), id, this.#streams.get(id)),
        closed: (err) => this.#closed(err),
        ...(settings.skipUnknownStreams ? { wants: (id: number) => this.#streams.has(id) } : {}),
      },
      settings,
    );
    this.limits = {
      bufferSize: settings.streamBufferSize,
      maxBytes: streamMaxBytes(settings.maxMessageSize),
      graceMs: settings.streamFullGraceMs,
    };
  }

  /** Open streams. */
  get size(): number {
    return this.#streams.size;
  }

  get(id: number): S | undefined {
    return this.#streams.get(id);
  }

  add(stream: S): void {
    this.#streams.set(stream.id, stream);
  }

  /** Called by Stream.finish. */
  delete(stream: Stream): void {
    if (this.#streams.get(stream.id) === stream) this.#streams.delete(stream.id);
  }

  #closed(error: TtrpcError): void {
    for (const s of [...this.#streams.values()]) s.close(error);
    this.#streams.clear();
    this.#owner.closed(error);
  }

  /** Encodes a message, refusing one over the size limit before anything is written. */
  encode(desc: DescMessage, message: unknown): EncodedMessage {
    const encoded = encodeMessage(desc, message);
    const max = this.settings.maxMessageSize;
    if (encoded.length > max) throw new OversizedMessageError(encoded.length, max);
    return encoded;
  }

  /**
   * Sends each message as a Data frame, waiting while the socket's buffer is
   * full, then closes the send side (RemoteClosed | NoData). Stops, sending
   * nothing more, once the stream finished. Throws what `messages` or the
   * encoding throws.
   */
  async send(stream: Stream, desc: DescMessage, messages: AsyncIterable<unknown>): Promise<void> {
    const channel = this.channel;
    for await (const m of messages) {
      if (stream.finished) return;
      if (m === undefined || m === null)
        throw new TtrpcError("ttrpc: stream message is undefined or null", Code.Unknown);
      channel.writeFrame(stream.id, MessageType.Data, 0, this.encode(desc, m));
      if (channel.needsDrain) await channel.drained();
    }
    if (!stream.finished) channel.writeFrame(stream.id, MessageType.Data, Flags.RemoteClosed | Flags.NoData);
  }
}
