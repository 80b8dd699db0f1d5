// `ttrpc-es list`: the services of .proto files, or one service's methods and call shapes.

import {
  Exit,
  PROTO_OPTIONS_HELP,
  CliError,
  EXIT_STATUS_HELP,
  parseCommandLine,
  protoOptions,
  runCommand,
} from "./cli-support.js";
import { callShape, rpcSignature } from "./describe-format.js";
import { loadProtos, protoSources } from "./proto-loader.js";
import { findService } from "./symbols.js";

const USAGE = `usage: ttrpc-es list [--proto FILE [-I DIR]...] [--protoset FILE] [SERVICE]

Without SERVICE, lists the services the protos given define (the built-in
ones without --proto or --protoset), one full name a line.
With SERVICE (full name, or a unique simple name), lists its methods:
name, call shape (unary, server-streaming, client-streaming, bidi-streaming)
and signature.

options:
${PROTO_OPTIONS_HELP}
${EXIT_STATUS_HELP}`;

export function run(argv: string[]): Promise<number> {
  return runCommand("list", async () => {
    const parsed = parseCommandLine(argv, protoOptions, USAGE);
    if (parsed === undefined) return Exit.ok;
    const { values, positionals } = parsed;
    if (positionals.length > 1)
      throw new CliError(`expected at most one SERVICE, got ${positionals.join(" ")}`, Exit.usage);
    const { files, services } = await loadProtos(protoSources(values));
    const name = positionals[0];
    if (name === undefined) {
      for (const s of services) process.stdout.write(`${s.typeName}\n`);
      return Exit.ok;
    }
    const service = findService(files, name);
    const width = Math.max(0, ...service.methods.map((m) => m.name.length));
    for (const m of service.methods) {
      process.stdout.write(
        `${service.typeName}/${m.name.padEnd(width)}  ${callShape(m).padEnd(16)}  ${rpcSignature(m)}\n`,
      );
    }
    return Exit.ok;
  });
}
