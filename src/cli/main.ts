#!/usr/bin/env node
// `ttrpc-es`: the command-line tool. Each command lives in its own module,
// loaded only when used, and returns the process exit status.

import module from "node:module";

// Every command is a cold start (scripts, health checks): Node's on-disk
// compile cache (Node >= 22.1; NODE_COMPILE_CACHE moves it,
// NODE_DISABLE_COMPILE_CACHE=1 turns it off) saves compiling the modules each
// command loads, all of them loaded after this line. Node 20 has none and goes without.
(module as { enableCompileCache?: () => unknown }).enableCompileCache?.();

const commands: Record<string, { summary: string; load: () => Promise<{ run(argv: string[]): Promise<number> }> }> = {
  call: { summary: "call a method of any ttrpc service (like grpcurl)", load: () => import("./call-command.js") },
  list: { summary: "list the services and methods of .proto files", load: () => import("./list-command.js") },
  describe: {
    summary: "describe a service, method or message of .proto files",
    load: () => import("./describe-command.js"),
  },
  migration: {
    summary: "run, serve or demo the hcsshim live-migration reference shim",
    load: () => import("./migration-command.js"),
  },
  nri: { summary: "run an example NRI plugin (logger, adjuster)", load: () => import("./nri-command.js") },
};

function usage(): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  const help = "Run 'ttrpc-es <command> --help' for a command's options.";
  return `usage: ttrpc-es <command> [options]\n\ncommands:\n${lines.join("\n")}\n\n${help}\n`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  const command = commands[name];
  if (command === undefined) {
    process.stderr.write(`ttrpc-es: unknown command "${name}"\nRun 'ttrpc-es --help' for the commands.\n`);
    return 2;
  }
  return (await command.load()).run(rest);
}

// A reader that stops early (`ttrpc-es list | head`) closes stdout: that ends
// the command quietly, as it does for other command-line tools.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw e;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`ttrpc-es: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  },
);
