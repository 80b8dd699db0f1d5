import { createServer, type Server, type ServerOptions } from "../server.js";
import { registerMigrationServer } from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_ttrpc.js";
import type { MigrationBackend } from "./backend.js";
import { createMigrationService, type MigrationService, type MigrationServiceOptions } from "./migration-service.js";

/** Options of {@link createMigrationServer}. */
export interface MigrationServerOptions<E> extends MigrationServiceOptions {
  /** Where the VM work goes. */
  backend: MigrationBackend<E>;
  /** Options of the ttrpc server. */
  server?: ServerOptions;
}

/**
 * A ttrpc server with the reference Migration service registered under
 * `Migration`, ready to `listen`. The service is returned too, to inspect
 * the session or `close()` it when the shim goes down.
 *
 * @example
 * ```ts
 * import { createMigrationServer } from "ttrpc-es/migration";
 * import { createSimulatedBackend } from "ttrpc-es/migration/simulated";
 *
 * const { server, service } = createMigrationServer({ backend: createSimulatedBackend() });
 * await server.listen("unix:/run/example/migration.sock");
 * ```
 */
export function createMigrationServer<E>(options: MigrationServerOptions<E>): {
  server: Server;
  service: MigrationService;
} {
  const { backend, server: serverOptions, ...serviceOptions } = options;
  const service = createMigrationService(backend, serviceOptions);
  const server = createServer(serverOptions);
  registerMigrationServer(server, service);
  return { server, service };
}
