import { dialSocket, parseAddress } from "./address.js";
import { createClient, type Client, type ClientOptions } from "./client.js";
import { DirectReads } from "./direct-reads.js";
import type { HybridVsockOptions } from "./hybrid-vsock.js";

/**
 * Dials a ttrpc address (`unix:/run/containerd/containerd.sock.ttrpc`,
 * `unix-abstract:NAME`, `tcp:HOST:PORT`, `npipe:NAME`, `hvsock:PATH:PORT`,
 * see `parseAddress`) and returns a client on the connection.
 *
 * @example
 * ```ts
 * import { connect } from "ttrpc-es";
 * import { createGreeterClient } from "./gen/greeter/v1/greeter_ttrpc.js";
 *
 * await using greeter = createGreeterClient(await connect("unix:/tmp/greeter.sock"));
 * const { message } = await greeter.sayHello({ name: "ttrpc" });
 * ```
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
  const a = parseAddress(address);
  const dialOptions = {
    ...(connectTimeoutMs === undefined ? {} : { timeoutMs: connectTimeoutMs }),
    ...(signal === undefined ? {} : { signal }),
    ...(hvsock === undefined ? {} : { hvsock }),
  };
  // A socket Node dials itself reads frames straight into place; a hybrid
  // vsock one comes from its handshake, which read it first.
  const reads = a.kind === "hvsock" ? undefined : new DirectReads();
  const socket = await dialSocket(a, dialOptions, reads?.onread);
  reads?.attach(socket);
  return createClient(socket, clientOptions);
}
