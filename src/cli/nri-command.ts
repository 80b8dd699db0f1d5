// `ttrpc-es nri run logger|adjuster`: runs one of the example NRI plugins
// against a runtime (containerd, CRI-O) until the runtime shuts it down.

import { parseArgs } from "node:util";
import { CliError, Exit, runCommand, usageErrors } from "./cli-support.js";

const HELP = `usage: ttrpc-es nri run logger|adjuster [options]

Runs an example NRI plugin until the runtime shuts it down (exit 0).
  logger     prints every request it receives as one JSON line on stdout
  adjuster   adds NRI_ADJUSTED_BY to each new container's environment, and a
             memory limit from the annotation ttrpc-es.nri/memory-limit (e.g. 256Mi)

  --socket PATH   the runtime's NRI socket (default /var/run/nri/nri.sock);
                  ignored when NRI_PLUGIN_SOCKET names an inherited socket
  --name NAME     plugin name (default NRI_PLUGIN_NAME, else ttrpc-es-<example>)
  --idx NN        two-digit plugin index, which orders plugins (default NRI_PLUGIN_IDX, else 50)
  --reconnect     when the runtime goes away, wait for it to come back instead of exiting
  -h, --help      this help

exit status: 0 the runtime shut the plugin down (or SIGINT/SIGTERM), 1 registration or
connection failed, 2 usage error
`;

const EXAMPLES = ["logger", "adjuster"] as const;

export function run(argv: string[]): Promise<number> {
  return runCommand("nri", async () => {
    const { values, positionals } = usageErrors(() =>
      parseArgs({
        args: argv,
        options: {
          socket: { type: "string" },
          name: { type: "string" },
          idx: { type: "string" },
          reconnect: { type: "boolean" },
          help: { type: "boolean", short: "h" },
        },
        strict: true,
        allowPositionals: true,
      }),
    );
    if (values.help) {
      process.stdout.write(HELP);
      return Exit.ok;
    }
    const [sub, example, ...extra] = positionals;
    if (sub !== "run")
      throw new CliError(sub === undefined ? "missing subcommand" : `unknown subcommand "${sub}"`, Exit.usage);
    if (example !== "logger" && example !== "adjuster") {
      throw new CliError(`the example must be one of ${EXAMPLES.join(", ")}, got "${example ?? ""}"`, Exit.usage);
    }
    if (extra.length > 0) throw new CliError(`unexpected arguments: ${extra.join(" ")}`, Exit.usage);
    // A plugin the runtime launched is named by it (NRI_PLUGIN_NAME / NRI_PLUGIN_IDX).
    const name = values.name ?? process.env.NRI_PLUGIN_NAME ?? `ttrpc-es-${example}`;
    const idx = values.idx ?? process.env.NRI_PLUGIN_IDX ?? "50";
    const { createStub } = await import("../nri/stub.js");
    const handlers =
      example === "logger"
        ? (await import("../nri/examples/logger.js")).loggerPlugin()
        : (await import("../nri/examples/adjuster.js")).adjusterPlugin(name);
    let stub: ReturnType<typeof createStub>;
    try {
      stub = createStub(handlers, {
        name,
        idx,
        ...(values.socket === undefined ? {} : { socketPath: values.socket }),
        onRuntimeGone: values.reconnect ? "reconnect" : "exit",
        onDisconnect: (reason, error) =>
          process.stderr.write(
            `ttrpc-es nri: runtime ${reason === "shutdown" ? "shut the plugin down" : "went away"}` +
              `${error ? ` (${error.message})` : ""}\n`,
          ),
      });
    } catch (e) {
      throw new CliError((e as Error).message, Exit.usage);
    }
    const stop = () => void stub.stop();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    try {
      await stub.run();
    } catch (e) {
      throw new CliError((e as Error).message, Exit.internal);
    } finally {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
    }
    return Exit.ok;
  });
}
