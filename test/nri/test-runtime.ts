// A TypeScript NRI runtime for tests: it listens on a unix socket, runs our
// multiplexer on each connection, serves the Runtime service on connection 2
// and calls the plugin's Plugin service on connection 1, as
// containerd/nri pkg/adaptation does. Plugins under test (ours, or Go's
// pkg/stub) connect to it.
import { createServer as createNetServer, type Server as NetServer, type Socket } from "node:net";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { createClient, createServer } from "ttrpc-es";
import {
  type ContainerUpdate,
  type ContainerUpdateSchema,
  createMultiplexer,
  createPluginClient,
  type Multiplexer,
  PLUGIN_SERVICE_CONN,
  type PluginClient,
  RUNTIME_SERVICE_CONN,
  registerRuntimeServer,
  type UpdateContainersRequest,
} from "ttrpc-es/nri";

/** One plugin connected to the test runtime. */
export interface ConnectedPlugin {
  name: string;
  idx: string;
  plugin: PluginClient;
  mux: Multiplexer;
  /** UpdateContainers requests the plugin sent. */
  updates: UpdateContainersRequest[];
  close(): void;
}

export interface TestRuntime {
  /** Resolves with the next plugin that registers. */
  nextPlugin(): Promise<ConnectedPlugin>;
  close(): Promise<void>;
}

export interface TestRuntimeOptions {
  /** Do not answer RegisterPlugin (to test the plugin's registration timeout). */
  neverAnswerRegistration?: boolean;
  /** What UpdateContainers answers as failed; default none. */
  failUpdates?: (req: UpdateContainersRequest) => MessageInitShape<typeof ContainerUpdateSchema>[] | ContainerUpdate[];
}

export async function startTestRuntime(socketPath: string, options: TestRuntimeOptions = {}): Promise<TestRuntime> {
  const waiting: ((p: ConnectedPlugin) => void)[] = [];
  const ready: ConnectedPlugin[] = [];
  const sockets = new Set<Socket>();
  const servers: ReturnType<typeof createServer>[] = [];
  const hand = (p: ConnectedPlugin) => {
    const w = waiting.shift();
    if (w) w(p);
    else ready.push(p);
  };
  const net: NetServer = createNetServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    const mux = createMultiplexer(socket);
    // As pkg/adaptation does (2 s there): a plugin that never answers fails the call, not the test run.
    const client = createClient(mux.open(PLUGIN_SERVICE_CONN), { defaultTimeoutMs: 10_000 });
    const updates: UpdateContainersRequest[] = [];
    const server = createServer();
    servers.push(server);
    let connected: ConnectedPlugin | undefined;
    registerRuntimeServer(server, {
      registerPlugin: (req, ctx) => {
        connected = {
          name: req.pluginName,
          idx: req.pluginIdx,
          plugin: createPluginClient(client),
          mux,
          updates,
          close: () => {
            client.close();
            mux.close();
          },
        };
        if (options.neverAnswerRegistration) {
          return new Promise((_, reject) => ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason)));
        }
        queueMicrotask(() => hand(connected!));
        return {};
      },
      updateContainers: (req) => {
        updates.push(req);
        return { failed: options.failUpdates?.(req) ?? [] };
      },
    });
    server.serveConnection(mux.open(RUNTIME_SERVICE_CONN));
    mux.done.then(() => {
      client.close();
      void server.close();
    });
  });
  await new Promise<void>((resolve, reject) => {
    net.once("error", reject);
    net.listen(socketPath, () => resolve());
  });
  return {
    nextPlugin: () => {
      const p = ready.shift();
      if (p) return Promise.resolve(p);
      return new Promise((resolve) => waiting.push(resolve));
    },
    async close() {
      await new Promise<void>((resolve) => {
        net.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      await Promise.all(servers.map((s) => s.close()));
    },
  };
}
