// `ttrpc-es migration serve | run | demo`: the hcsshim live-migration
// reference shim, the orchestrator, and the demo `npm start` runs.

import { createServer } from "node:net";
import { parseArgs } from "node:util";
import { migrate } from "../migration/orchestrator.js";
import { demo, DEMO_HELP } from "./migration-demo.js";
import { initializeOptions, initOptions, INIT_OPTIONS_HELP, parseCount, UsageError } from "./migration-options.js";
import { ProgressView } from "./migration-progress.js";
import { serve, SERVE_HELP } from "./migration-serve.js";
import { Phase, PhaseState } from "../../gen/github.com/Microsoft/hcsshim/pkg/migration/migration_options_pb.js";

const HELP = `usage: ttrpc-es migration <subcommand> [options]

subcommands:
  serve   run one reference Migration shim (simulated backend) until SIGTERM/SIGINT
  run     migrate a sandbox between two shims with the orchestrator
  demo    start two shims, migrate a running simulated sandbox, verify it (npm start)

Run 'ttrpc-es migration <subcommand> --help' for its options.
exit status: 0 success, 1 the migration failed (the shims were wound down), 2 usage error
`;

export const RUN_HELP = `usage: ttrpc-es migration run --source ADDR --destination ADDR [options]

Drives two Migration shims through the whole workflow (PrepareAndExportSandbox,
ImportSandbox, PrepareSandbox, CreateDuplicateSocket, Notifications,
TransferSandbox, FinalizeSandbox, Cleanup); on any failure runs the abort path
(Cancel, Finalize source RESUME / destination STOP, Cleanup).

  --source ADDR                  the source shim (unix:PATH, tcp:HOST:PORT, ...)
  --destination ADDR             the destination shim
  --session ID                   the session id (default: a random UUID)
  --sandbox-id ID                the sandbox id on the destination (default: the source's)
  --transport unix|tcp           memory-transfer socket for the endpoint descriptors (default unix)
  --transfer-address ADDR        its address: a unix socket path, or HOST:PORT
                                 (default: a fresh path in the temp folder / a free loopback port)
  --timeout-ms MS                TransferSandbox timeout and bound on the outcome (default 600000)
  --json                         one JSON object on stdout instead of live output
  -h, --help                     this help

${INIT_OPTIONS_HELP}
`;

function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function runCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      source: { type: "string" },
      destination: { type: "string" },
      session: { type: "string" },
      "sandbox-id": { type: "string" },
      transport: { type: "string" },
      "transfer-address": { type: "string" },
      "timeout-ms": { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
      ...initOptions,
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(RUN_HELP);
    return 0;
  }
  if (values.source === undefined || values.destination === undefined)
    throw new UsageError("--source and --destination are required");
  const transport = values.transport ?? "unix";
  if (transport !== "unix" && transport !== "tcp")
    throw new UsageError(`--transport must be unix or tcp, not "${transport}"`);
  let transferAddress = values["transfer-address"];
  if (transferAddress === undefined && transport === "tcp") transferAddress = `127.0.0.1:${await freeLoopbackPort()}`;
  const timeoutMs = parseCount(values["timeout-ms"], "--timeout-ms");
  const view = values.json ? undefined : new ProgressView(process.stdout);
  const interrupt = new AbortController();
  const onSigint = () => interrupt.abort(new Error("interrupted (SIGINT)"));
  process.once("SIGINT", onSigint);
  try {
    view?.startClock();
    const result = await migrate({
      source: values.source,
      destination: values.destination,
      transport,
      initOptions: initializeOptions(values, false),
      signal: interrupt.signal,
      ...(values.session === undefined ? {} : { sessionId: values.session }),
      ...(values["sandbox-id"] === undefined ? {} : { sandboxId: values["sandbox-id"] }),
      ...(transferAddress === undefined ? {} : { transferAddress }),
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
      ...(view === undefined ? {} : { onEvent: (e) => view.orchestrator(e) }),
    });
    if (values.json) {
      process.stdout.write(
        `${JSON.stringify({
          ...result,
          notifications: result.notifications.map((n) => ({
            ...n,
            phase: `PHASE_${Phase[n.phase]}`,
            state: `PHASE_STATE_${PhaseState[n.state]}`,
          })),
        })}\n`,
      );
    } else if (result.ok) {
      process.stdout.write(
        `\n✓ migrated in ${(result.durationMs / 1000).toFixed(2)} s, ` +
          `blackout ${result.blackoutMs ?? "?"} ms (session ${result.sessionId})\n`,
      );
    } else {
      const recovered = result.recovered === undefined ? "" : `, source recovered: ${result.recovered}`;
      process.stdout.write(
        `\n✗ migration failed: ${result.error}\n` +
          `  source ${result.source}, destination ${result.destination}${recovered}\n`,
      );
      for (const e of result.abortErrors) process.stdout.write(`  abort path: ${e}\n`);
    }
    return result.ok ? 0 : 1;
  } finally {
    process.off("SIGINT", onSigint);
  }
}

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  try {
    switch (sub) {
      case "serve":
        return await serve(rest);
      case "run":
        return await runCommand(rest);
      case "demo":
        return await demo(rest);
      case undefined:
      case "help":
      case "--help":
      case "-h":
        process.stdout.write(HELP);
        return sub === undefined ? 2 : 0;
      default:
        process.stderr.write(`ttrpc-es migration: unknown subcommand "${sub}"\n\n${HELP}`);
        return 2;
    }
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      const help = sub === "serve" ? SERVE_HELP : sub === "run" ? RUN_HELP : DEMO_HELP;
      process.stderr.write(`ttrpc-es migration ${sub}: ${(e as Error).message}\n\n${help}`);
      return 2;
    }
    throw e;
  }
}
