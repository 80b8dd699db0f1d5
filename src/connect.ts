import { dial } from "./address.js";
import { createClient, type Client, type ClientOptions } from "./client.js";
import type { HybridVsockOptions } from "./hybrid-vsock.js";

/**
 * Dials a ttrpc address (`unix:/run/containerd/containerd.sock.ttrpc`,
 * `unix-abstract:NAME`, `tcp:HOST:PORT`, `npipe:NAME`, `hvsock:PATH:PORT`,
 * see `parseAddress`) and returns a client on the connection.
 */
export async function connect(
  address: string,
  options: ClientOptions & {
    /** Bounds the connect; for hybrid vsock all its attempts (default 30 s, Kata's). */
    connectTimeoutMs?: number;
    signal?: AbortSignal;
    /** Hybrid vsock handshake timing (`handshakeTimeoutMs`, default 10 s; `retryDelayMs`; `maxAttempts`). */
    hvsock?: Pick<HybridVsockOptions, "handshakeTimeoutMs" | "retryDelayMs" | "maxAttempts">;
  } = {},
): Promise<Client> {
  const { connectTimeoutMs, signal, hvsock, ...clientOptions } = options;
  const socket = await dial(address, {
    ...(connectTimeoutMs === undefined ? {} : { timeoutMs: connectTimeoutMs }),
    ...(signal === undefined ? {} : { signal }),
    ...(hvsock === undefined ? {} : { hvsock }),
  });
  return createClient(socket, clientOptions);
}
