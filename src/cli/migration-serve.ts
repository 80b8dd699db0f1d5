// `ttrpc-es migration serve`: one reference Migration shim with the
// simulated backend, in the foreground until SIGTERM or SIGINT.

import { parseArgs } from "node:util";
import { createMigrationServer } from "../migration/migration-server.js";
import { createSimulatedBackend } from "../migration/simulated/simulated-backend.js";
import type { TransferEvent } from "../migration/simulated/transfer-events.js";
import { parseCount, parseSize, UsageError, vmOptions, VM_OPTIONS_HELP } from "./migration-options.js";

export const SERVE_HELP = `usage: ttrpc-es migration serve --address ADDR [--sandbox ID] [options]

Runs one reference Migration shim (the simulated backend) until SIGTERM or SIGINT.

  --address ADDR                 where to listen: unix:PATH, tcp:HOST:PORT, ...
  --sandbox ID                   start with a running simulated sandbox (a source);
                                 without it the shim waits for an import (a destination)
${VM_OPTIONS_HELP}
  --events                       print JSON lines on stdout: {"event":"listening"}, transfer
                                 progress ({"event":"transfer",...}), {"event":"stopped"}
  -h, --help                     this help
`;

export async function serve(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      address: { type: "string" },
      sandbox: { type: "string" },
      events: { type: "boolean" },
      help: { type: "boolean", short: "h" },
      ...vmOptions,
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(SERVE_HELP);
    return 0;
  }
  if (values.address === undefined) throw new UsageError("--address is required");
  const line = (o: object) => {
    if (values.events) process.stdout.write(`${JSON.stringify(o)}\n`);
  };
  let lastProgress = 0;
  const observe = (e: TransferEvent) => {
    if (e.type === "progress") {
      // At most ten progress lines a second, and the end of every pass.
      const now = performance.now();
      if (e.passDone < e.passPages && now - lastProgress < 100) return;
      lastProgress = now;
    }
    line({ event: "transfer", ...e });
  };
  const memoryBytes = values.memory === undefined ? undefined : parseSize(values.memory, "--memory");
  const pageSize = values["page-size"] === undefined ? undefined : parseSize(values["page-size"], "--page-size");
  const dirty = parseCount(values["dirty-rate"], "--dirty-rate", Number.MAX_SAFE_INTEGER);
  const processors = parseCount(values.processors, "--processors");
  const backend = createSimulatedBackend({
    observe,
    ...(values.sandbox === undefined
      ? {}
      : {
          sandbox: {
            sandboxId: values.sandbox,
            ...(memoryBytes === undefined ? {} : { memoryBytes }),
            ...(pageSize === undefined ? {} : { pageSize }),
            ...(dirty === undefined ? {} : { dirtyPagesPerSecond: dirty }),
            ...(processors === undefined ? {} : { processorCount: processors }),
            containers: [
              { id: `${values.sandbox}-app`, image: "docker.io/library/busybox:latest", state: "running", pid: 1 },
            ],
          },
        }),
  });
  const { server, service } = createMigrationServer({
    backend,
    onError: (e) => process.stderr.write(`migration serve: ${e instanceof Error ? e.message : String(e)}\n`),
  });
  const address = await server.listen(values.address);
  line({ event: "listening", address, pid: process.pid });
  if (!values.events) process.stderr.write(`migration shim listening on ${address} (pid ${process.pid})\n`);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
  });
  await service.close();
  await server.shutdown({ timeoutMs: 2000 });
  backend.vm?.stop();
  line({ event: "stopped", signal });
  return 0;
}
