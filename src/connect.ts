import { dial } from "./address.js";
import { createClient, type Client, type ClientOptions } from "./client.js";

/**
 * Dials a ttrpc address (`unix:/run/containerd/containerd.sock.ttrpc`,
 * `unix-abstract:NAME`, `tcp:HOST:PORT`, `npipe:NAME`, see `parseAddress`)
 * and returns a client on the connection.
 */
export async function connect(
  address: string,
  options: ClientOptions & { connectTimeoutMs?: number; signal?: AbortSignal } = {},
): Promise<Client> {
  const { connectTimeoutMs, signal, ...clientOptions } = options;
  const socket = await dial(address, {
    ...(connectTimeoutMs === undefined ? {} : { timeoutMs: connectTimeoutMs }),
    ...(signal === undefined ? {} : { signal }),
  });
  return createClient(socket, clientOptions);
}
