// `ttrpc-es describe`: a service, method, message or enum in proto-like form.

import {
  CliError,
  Exit,
  EXIT_STATUS_HELP,
  PROTO_OPTIONS_HELP,
  parseCommandLine,
  protoOptions,
  runCommand,
} from "./cli-support.js";
import { callShape, formatEnum, formatMessage, formatMethod, formatService, header } from "./describe-format.js";
import { loadProtos, protoSources } from "./proto-loader.js";
import { findSymbol } from "./symbols.js";

const USAGE = `usage: ttrpc-es describe [--proto FILE [-I DIR]...] [--protoset FILE] SYMBOL

Prints the definition of SYMBOL with its comments: a service (all its
methods), a method (SERVICE.METHOD or SERVICE/METHOD: the rpc, its call shape
and its request and response messages), a message or an enum. Full names, or a
unique simple name.

options:
${PROTO_OPTIONS_HELP}
${EXIT_STATUS_HELP}`;

export function run(argv: string[]): Promise<number> {
  return runCommand("describe", async () => {
    const parsed = parseCommandLine(argv, protoOptions, USAGE);
    if (parsed === undefined) return Exit.ok;
    const { values, positionals } = parsed;
    if (positionals.length !== 1) throw new CliError("expected one SYMBOL", Exit.usage);
    const { files } = await loadProtos(protoSources(values));
    const sym = findSymbol(files, positionals[0]!);
    let out: string;
    switch (sym.kind) {
      case "service":
        out = header(sym.typeName, "service", sym.file) + formatService(sym);
        break;
      case "rpc": {
        const name = `${sym.parent.typeName}/${sym.name}`;
        out =
          header(name, `${callShape(sym)} method`, sym.parent.file) +
          formatMethod(sym) +
          `\n${header(sym.input.typeName, "request message", sym.input.file)}${formatMessage(sym.input)}` +
          `\n${header(sym.output.typeName, "response message", sym.output.file)}${formatMessage(sym.output)}`;
        break;
      }
      case "message":
        out = header(sym.typeName, "message", sym.file) + formatMessage(sym);
        break;
      case "enum":
        out = header(sym.typeName, "enum", sym.file) + formatEnum(sym);
        break;
    }
    process.stdout.write(out);
    return Exit.ok;
  });
}
