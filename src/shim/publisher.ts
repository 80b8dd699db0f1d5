// Events to containerd, as Go's pkg/shim RemoteEventsPublisher sends them:
// Events/Forward on TTRPC_ADDRESS, an Envelope with the namespace, topic and
// time, the namespace also in the call's metadata (containerd-namespace-ttrpc).
// A failed send is queued and retried after 1 s, 2 s, ... 5 s (five retries,
// then the event is dropped); a closed connection is redialed once per send.
// First sends go one at a time, in publish order, so containerd sees create
// before start before exit.
import { create, type DescMessage, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { EnvelopeSchema, type Envelope } from "../../gen/containerd/types/event_pb.js";
import { createEventsClient, type EventsClient } from "../../gen/containerd/services/events/ttrpc/v1/events_ttrpc.js";
import type { Client } from "../client.js";
import { connect } from "../connect.js";

/** The ttrpc metadata key containerd reads a call's namespace from. */
export const NAMESPACE_METADATA_KEY = "containerd-namespace-ttrpc";
/** Retries of one event before it is dropped (Go's maxRequeue). */
export const MAX_REQUEUE = 5;
const FORWARD_TIMEOUT_MS = 5000;

/** Options of an {@link EventPublisher}. */
export interface EventPublisherOptions {
  /** containerd's ttrpc address (TTRPC_ADDRESS). */
  address: string;
  namespace: string;
  /** Waits before a retry; default a timer. Tests pass their own to see the delays. */
  sleep?: (ms: number) => Promise<void>;
  /** Told when an event is dropped after its last retry. */
  onDrop?: (envelope: Envelope, error: unknown) => void;
  /** Told about each failed send. */
  onError?: (envelope: Envelope, error: unknown) => void;
}

const timerSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

/** Forwards events to containerd. */
export class EventPublisher {
  readonly #options: EventPublisherOptions;
  #connection: Promise<{ raw: Client; events: EventsClient }> | undefined;
  #order: Promise<unknown> = Promise.resolve();
  readonly #retries = new Set<Promise<void>>();
  #closed = false;

  constructor(options: EventPublisherOptions) {
    this.#options = options;
  }

  /**
   * Publishes `event` under `topic` (e.g. "/tasks/exit"). Resolves once
   * containerd took it; rejects if the first send failed, the event then
   * being queued for retry.
   */
  publish<T extends DescMessage>(topic: string, schema: T, event: MessageInitShape<T>): Promise<void> {
    const envelope = create(EnvelopeSchema, {
      timestamp: timestampFromDate(new Date()),
      namespace: this.#options.namespace,
      topic,
      event: { typeUrl: schema.typeName, value: toBinary(schema, create(schema, event)) },
    });
    const sent = this.#order.then(() => this.#forward(envelope));
    this.#order = sent.catch(() => undefined);
    return sent.catch((e: unknown) => {
      this.#requeue(envelope, 1);
      throw e;
    });
  }

  /** Resolves when no retry is pending (for an orderly exit). */
  async drain(): Promise<void> {
    await this.#order;
    while (this.#retries.size > 0) await Promise.allSettled([...this.#retries]);
  }

  /** Closes the connection; queued retries are dropped. */
  close(): void {
    this.#closed = true;
    void this.#connection?.then(
      (c) => c.raw.close(),
      () => undefined,
    );
  }

  #requeue(envelope: Envelope, count: number): void {
    if (this.#closed) return;
    const sleep = this.#options.sleep ?? timerSleep;
    const retry = sleep(count * 1000)
      .then(() => this.#forward(envelope))
      .catch((e: unknown) => {
        if (count >= MAX_REQUEUE || this.#closed) this.#options.onDrop?.(envelope, e);
        else this.#requeue(envelope, count + 1);
      })
      .finally(() => this.#retries.delete(retry));
    this.#retries.add(retry);
  }

  async #forward(envelope: Envelope): Promise<void> {
    try {
      await this.#send(envelope);
    } catch (e) {
      const conn = await this.#connection?.catch(() => undefined);
      if (!conn?.raw.closed) {
        this.#options.onError?.(envelope, e);
        throw e;
      }
      // The connection ended (containerd restarted): redial once, as Go does.
      this.#connection = undefined;
      await this.#send(envelope).catch((e2: unknown) => {
        this.#options.onError?.(envelope, e2);
        throw e2;
      });
    }
  }

  async #send(envelope: Envelope): Promise<void> {
    const { events } = await this.#connect();
    const metadata = { [NAMESPACE_METADATA_KEY]: this.#options.namespace };
    await events.forward({ envelope }, { timeoutMs: FORWARD_TIMEOUT_MS, metadata });
  }

  #connect(): Promise<{ raw: Client; events: EventsClient }> {
    if (!this.#connection) {
      const dialing = connect(this.#options.address).then((raw) => ({ raw, events: createEventsClient(raw) }));
      // A failed dial is forgotten, so the next send dials again.
      dialing.catch(() => {
        if (this.#connection === dialing) this.#connection = undefined;
      });
      this.#connection = dialing;
    }
    return this.#connection;
  }
}
