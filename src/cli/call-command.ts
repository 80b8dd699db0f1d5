// `ttrpc-es call`: calls a method of any ttrpc service, with request and
// response messages in protobuf JSON. grpcurl for ttrpc: the protocol has no
// reflection, so the method comes from .proto files (compiled with buf at run
// time) or a FileDescriptorSet.

import { once } from "node:events";
import { parseArgs } from "node:util";
import {
  toJson,
  type DescMethod,
  type DescMethodBiDiStreaming,
  type DescMethodClientStreaming,
  type DescMethodServerStreaming,
  type DescMethodUnary,
  type Message,
  type Registry,
} from "@bufbuild/protobuf";
import { anyUnpack, type Any } from "@bufbuild/protobuf/wkt";
import { parseAddress } from "../address.js";
import { Code, codeName } from "../code.js";
import { connect } from "../connect.js";
import type { Client } from "../client.js";
import { TtrpcError } from "../ttrpc-error.js";
import {
  CliError,
  Exit,
  EXIT_STATUS_HELP,
  PROTO_OPTIONS_HELP,
  parseDuration,
  protoOptions,
  runCommand,
  usageErrors,
} from "./cli-support.js";
import { callShape } from "./describe-format.js";
import { dataSource, readMessageStream, readSingleMessage } from "./json-input.js";
import { loadProtos } from "./proto-loader.js";
import { findServiceMethod } from "./symbols.js";

const USAGE = `usage: ttrpc-es call --address ADDR --proto FILE [-I DIR]... [--protoset FILE]
                     [-H KEY=VALUE]... [--namespace NAME] [--timeout DURATION]
                     [-d JSON | -d @FILE | -d @-] SERVICE/METHOD

Calls SERVICE/METHOD (also SERVICE.METHOD or /SERVICE/METHOD; SERVICE may be a
unique simple name) on the ttrpc server at ADDR. Requests and responses are
protobuf JSON. A unary or client-streaming response prints as one indented
object; server-streaming and bidi responses print one object per line as they
arrive. Ctrl-C cancels the call.

options:
  --address ADDR        where the server listens:
                          unix:PATH, unix://PATH or a bare path    unix socket
                          unix-abstract:NAME or unix:@NAME         Linux abstract socket
                          tcp:HOST:PORT                            TCP
                          npipe:NAME or \\\\.\\pipe\\NAME              Windows named pipe
                          hvsock:PATH:PORT or hvsock://PATH:PORT   hybrid vsock (Firecracker, Cloud Hypervisor)
${PROTO_OPTIONS_HELP}  -H, --header KEY=VALUE request metadata; repeat for several keys or several values of a key
  --namespace NAME      containerd namespace: sets containerd-namespace-ttrpc metadata
  --timeout DURATION    deadline of the call, sent to the server (Go durations: 500ms, 5s, 1m30s)
  --connect-timeout DURATION
                        how long to wait for the connection (default 10s)
  -d, --data DATA       the request: JSON text, @FILE, or @- for stdin. Unary and
                        server-streaming methods take one object (default {});
                        client-streaming and bidi methods take newline-delimited JSON,
                        one message per line, read as it arrives (none without -d)
  --emit-defaults       print fields that hold their default values too

${EXIT_STATUS_HELP}`;

const callOptions = {
  ...protoOptions,
  address: { type: "string" },
  header: { type: "string", short: "H", multiple: true },
  namespace: { type: "string" },
  timeout: { type: "string" },
  "connect-timeout": { type: "string" },
  data: { type: "string", short: "d" },
  "emit-defaults": { type: "boolean" },
} as const;

/** `key=value` (or grpcurl's `key: value`) into a metadata pair. */
export function parseHeader(h: string): [string, string] {
  const eq = h.indexOf("=");
  const colon = h.indexOf(":");
  const cut = eq >= 0 && (colon < 0 || eq < colon) ? eq : colon;
  const key = cut < 0 ? "" : h.slice(0, cut).trim();
  if (key === "") throw new CliError(`invalid header "${h}": expected KEY=VALUE`, Exit.usage);
  return [key.toLowerCase(), h.slice(cut + 1).replace(/^ /, "")];
}

function printable(registry: Registry, emitDefaults: boolean) {
  return (desc: DescMethod["output"], m: Message, indent?: number): string => {
    try {
      return JSON.stringify(toJson(desc, m, { registry, alwaysEmitImplicit: emitDefaults }), null, indent);
    } catch (e) {
      throw new CliError(
        `cannot print the ${desc.typeName} response as JSON: ${(e as Error).message}; ` +
          "pass the .proto defining that type with --proto",
        Exit.protos,
      );
    }
  };
}

/** An Any as JSON: unpacked when the registry knows its type, else type URL and base64 bytes. */
function anyJson(any: Any, registry: Registry): string {
  try {
    if (anyUnpack(any, registry) !== undefined) {
      const m = registry.getMessage("google.protobuf.Any")!;
      return JSON.stringify(toJson(m, any, { registry }));
    }
  } catch {
    // fall through
  }
  return JSON.stringify({ "@type": any.typeUrl, value: Buffer.from(any.value).toString("base64") });
}

async function write(text: string): Promise<void> {
  if (!process.stdout.write(text)) await once(process.stdout, "drain");
}

export function run(argv: string[]): Promise<number> {
  return runCommand("call", USAGE, async () => {
    const { values, positionals } = usageErrors(() =>
      parseArgs({ args: argv, options: callOptions, allowPositionals: true }),
    );
    if (values.help === true) {
      process.stdout.write(USAGE);
      return Exit.ok;
    }
    if (positionals.length !== 1) {
      throw new CliError(
        positionals.length === 0
          ? "missing SERVICE/METHOD"
          : `expected one SERVICE/METHOD, got ${positionals.join(" ")}`,
        Exit.usage,
      );
    }
    const address = values.address;
    if (address === undefined)
      throw new CliError("missing --address (e.g. --address unix:/run/containerd/s/abc)", Exit.usage);
    try {
      parseAddress(address);
    } catch (e) {
      throw new CliError(e instanceof TtrpcError ? e.rawMessage : String(e), Exit.usage);
    }
    const metadata = (values.header ?? []).map(parseHeader);
    if (values.namespace !== undefined) metadata.push(["containerd-namespace-ttrpc", values.namespace]);
    const timeoutMs = values.timeout === undefined ? undefined : parseDuration(values.timeout);
    if (timeoutMs !== undefined && timeoutMs < 0) throw new CliError(`--timeout must not be negative`, Exit.usage);
    const connectTimeoutMs = parseDuration(values["connect-timeout"] ?? "10s");

    const { files, registry } = await loadProtos({
      protos: values.proto ?? [],
      importPaths: values["import-path"] ?? [],
      protosets: values.protoset ?? [],
    });
    const method = findServiceMethod(files, positionals[0]!);
    const src = dataSource(values.data);
    const streamingIn = method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming";
    // A single request is read and checked before connecting.
    const single = streamingIn ? undefined : await readSingleMessage(src, method.input, registry, () => process.stdin);
    const print = printable(registry, values["emit-defaults"] === true);

    // Ctrl-C aborts the call (the runtime fails it with CANCELLED and we close
    // the connection); a second Ctrl-C exits at once.
    const controller = new AbortController();
    let interrupted = false;
    const onSigint = () => {
      if (interrupted) process.exit(Exit.interrupted);
      interrupted = true;
      controller.abort();
    };
    process.on("SIGINT", onSigint);
    const onStdoutError = (e: NodeJS.ErrnoException) => {
      if (e.code === "EPIPE") controller.abort();
    };
    process.stdout.on("error", onStdoutError);
    let closeInput = () => {};
    let inputError: CliError | undefined;
    let client: Client | undefined;
    try {
      try {
        client = await connect(address, { connectTimeoutMs, signal: controller.signal });
      } catch (e) {
        if (interrupted) throw new CliError("interrupted", Exit.interrupted);
        const err = TtrpcError.from(e);
        throw new CliError(`${err.rawMessage}; is the server running and --address right?`, Exit.connect);
      }
      const options = {
        signal: controller.signal,
        metadata,
        ...(timeoutMs === undefined || timeoutMs === 0 ? {} : { timeoutMs }),
      };
      const inputs = async function* () {
        try {
          yield* readMessageStream(
            src,
            method.input,
            registry,
            () => process.stdin,
            (c) => (closeInput = c),
          );
        } catch (e) {
          if (e instanceof CliError) inputError = e;
          throw e;
        }
      };
      try {
        switch (method.methodKind) {
          case "unary": {
            const res = await client.unary(method as DescMethodUnary, single!, options);
            await write(`${print(method.output, res, 2)}\n`);
            break;
          }
          case "client_streaming": {
            const res = await client.clientStream(method as DescMethodClientStreaming, inputs(), options);
            await write(`${print(method.output, res, 2)}\n`);
            break;
          }
          case "server_streaming":
            for await (const res of client.serverStream(method as DescMethodServerStreaming, single!, options)) {
              await write(`${print(method.output, res)}\n`);
            }
            break;
          case "bidi_streaming":
            for await (const res of client.bidiStream(method as DescMethodBiDiStreaming, inputs(), options)) {
              await write(`${print(method.output, res)}\n`);
            }
            break;
        }
      } catch (e) {
        if (e instanceof CliError) throw e;
        if (inputError !== undefined) throw inputError;
        if (interrupted)
          throw new CliError(
            `interrupted; ${callShape(method)} call ${method.parent.typeName}/${method.name} cancelled`,
            Exit.interrupted,
          );
        const err = TtrpcError.from(e);
        let text = `rpc error: code = ${codeName(err.code)} desc = ${err.rawMessage}`;
        for (const d of err.details) text += `\n  detail: ${anyJson(d, registry)}`;
        throw new CliError(text, Exit.rpcBase + (err.code === Code.Ok ? Code.Unknown : err.code));
      }
      return Exit.ok;
    } finally {
      process.off("SIGINT", onSigint);
      process.stdout.off("error", onStdoutError);
      closeInput();
      client?.close();
    }
  });
}
