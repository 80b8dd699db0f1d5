// Helpers of the reference Migration server tests: a shim on a real unix
// socket with the testing backend, the prebuilt client, and a Notifications
// reader that lets a test wait for a phase instead of sleeping.
import { join } from "node:path";
import { expect, onTestFinished, vi } from "vitest";
import { type Code, TtrpcError, connect, type Client } from "ttrpc-es";
import {
  MemoryTransport,
  Phase,
  PhaseState,
  createMigrationClient,
  createMigrationServer,
  encodeSandboxConfig,
  type MigrationClient,
  type MigrationService,
  type MigrationServiceOptions,
  type NotificationsResponse,
} from "ttrpc-es/migration";
import {
  createTestingBackend,
  testingEndpoint,
  type TestingBackend,
  type TestingBackendOptions,
} from "ttrpc-es/migration/testing";
import { tempDir } from "../common.js";

export const SESSION = "6f1c2a4e-9b3d-4c1e-8a7f-0d2b5e6c7a81";
export const INIT = { memoryTransport: MemoryTransport.TCP };

export interface Shim {
  backend: TestingBackend;
  service: MigrationService;
  client: MigrationClient;
  /** The client's connection. */
  conn: Client;
  address: string;
  /** Another client connection to the same shim. */
  connectAgain(): Promise<{ client: MigrationClient; conn: Client }>;
}

/** A shim listening on a fresh unix socket, closed after the test. */
export async function startShim(
  backendOptions: TestingBackendOptions = {},
  serviceOptions: MigrationServiceOptions = {},
): Promise<Shim> {
  const backend = createTestingBackend(backendOptions);
  const { server, service } = createMigrationServer({ backend, ...serviceOptions });
  const address = await server.listen(`unix:${join(tempDir(), "shim.sock")}`);
  const conns: Client[] = [];
  const connectAgain = async () => {
    const conn = await connect(address);
    conns.push(conn);
    return { client: createMigrationClient(conn), conn };
  };
  onTestFinished(async () => {
    for (const c of conns) c.close();
    await server.close();
    // A session left waiting for its socket holds a timer until it ends.
    await service.close();
  });
  const { client, conn } = await connectAgain();
  return { backend, service, client, conn, address, connectAgain };
}

/** A Notifications stream being read into `items`. */
export interface Reader {
  readonly items: NotificationsResponse[];
  /** Resolves with the first notification (already read or to come) of the phase. */
  until(phase: Phase): Promise<NotificationsResponse>;
  /** Resolves when the stream ends (rejects with its error). */
  readonly done: Promise<void>;
}

export function read(stream: AsyncIterable<NotificationsResponse>): Reader {
  const items: NotificationsResponse[] = [];
  const waiters: { phase: Phase; resolve: (r: NotificationsResponse) => void; reject: (e: unknown) => void }[] = [];
  const settle = () => {
    for (const w of [...waiters]) {
      const hit = items.find((r) => r.notification?.phase === w.phase);
      if (hit !== undefined) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(hit);
      }
    }
  };
  const done = (async () => {
    try {
      for await (const r of stream) {
        items.push(r);
        settle();
      }
    } finally {
      for (const w of waiters.splice(0)) w.reject(new Error(`stream ended without phase ${Phase[w.phase]}`));
    }
  })();
  done.catch(() => {});
  return {
    items,
    done,
    until(phase) {
      return new Promise((resolve, reject) => {
        waiters.push({ phase, resolve, reject });
        settle();
        done.then(() => reject(new Error(`stream ended without phase ${Phase[phase]}`)), reject);
      });
    },
  };
}

/**
 * Opens Notifications and waits until the shim counts the subscriber, so no
 * event published after this returns can be missed.
 */
export async function listen(shim: Shim, session = SESSION): Promise<Reader> {
  const before = shim.service.session.subscribers;
  const r = read(shim.client.notifications({ sessionId: session }));
  await vi.waitFor(() => expect(shim.service.session.subscribers).toBeGreaterThan(before), { timeout: 10_000 });
  return r;
}

/** A successful transfer's notifications, as {@link phases} names them. */
export const SUCCESSFUL_PHASES = [
  "SETUP_DONE/SUCCESS",
  "TRANSFER_IN_PROGRESS/SUCCESS",
  "BLACKOUT_STARTED/SUCCESS",
  "OFFLINE_DONE/SUCCESS",
  "BLACKOUT_EXITED/SUCCESS",
  "DONE/SUCCESS",
];

/** The status a call ended with, or "ok". */
export async function code(p: Promise<unknown>): Promise<Code | "ok"> {
  try {
    await p;
    return "ok";
  } catch (e) {
    if (e instanceof TtrpcError) return e.code;
    throw e;
  }
}

/** `[phase, state]` names of the notifications read, for readable assertions. */
export function phases(items: readonly NotificationsResponse[]): string[] {
  return items.map((r) => `${Phase[r.notification!.phase]}/${PhaseState[r.notification!.state]}`);
}

/** Drives a source shim to SourceExported and returns the exported config. */
export async function exportSource(shim: Shim, session = SESSION) {
  return (await shim.client.prepareAndExportSandbox({ sessionId: session, initOptions: INIT })).config!;
}

/** Drives a destination shim to DestinationPrepared with a config. */
export async function prepareDestination(shim: Shim, session = SESSION, config = defaultConfig(session)) {
  await shim.client.importSandbox({ sessionId: session, sandboxId: "sandbox-dst", config });
  await shim.client.prepareSandbox({ sessionId: session, initOptions: INIT });
}

export function defaultConfig(session = SESSION) {
  return encodeSandboxConfig({
    schemaVersion: 1,
    sandboxId: "sandbox-1",
    sessionId: session,
    vm: { guestOs: "linux", processorCount: 1, memory: { sizeBytes: 1 << 20, pageSize: 4096 } },
    containers: [],
    annotations: {},
  });
}

/** Source or destination up to SocketReady. */
export async function ready(shim: Shim, side: "source" | "destination", session = SESSION): Promise<void> {
  if (side === "source") await exportSource(shim, session);
  else await prepareDestination(shim, session);
  await shim.client.createDuplicateSocket({ sessionId: session, protocolInfo: testingEndpoint(side) });
}

/** Source or destination to TransferCompleted, waiting on PHASE_DONE. */
export async function transferred(shim: Shim, side: "source" | "destination", session = SESSION): Promise<Reader> {
  await ready(shim, side, session);
  const r = await listen(shim, session);
  await shim.client.transferSandbox({ sessionId: session });
  await r.until(Phase.DONE);
  return r;
}

export { Phase, PhaseState, testingEndpoint };
