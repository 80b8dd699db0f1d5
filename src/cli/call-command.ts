// `ttrpc-es call`: calls a method of any ttrpc service, with request and
// response messages in protobuf JSON. grpcurl for ttrpc: the protocol has no
// reflection, so the method comes from .proto files (compiled with buf at run
// time) or a FileDescriptorSet.

import { once } from "node:events";
import type {
  DescMethod,
  DescMethodBiDiStreaming,
  DescMethodClientStreaming,
  DescMethodServerStreaming,
  DescMethodUnary,
  Message,
  Registry,
} from "@bufbuild/protobuf";
import { parseAddress } from "../address.js";
import type { Client } from "../client.js";
import { Code, codeName } from "../code.js";
import { connect } from "../connect.js";
import { TtrpcError } from "../ttrpc-error.js";
import { anyJson, messageJson } from "./any-json.js";
import {
  CliError,
  type CommandLine,
  Exit,
  EXIT_STATUS_HELP,
  PROTO_OPTIONS_HELP,
  parseCommandLine,
  parseDuration,
  protoOptions,
  runCommand,
} from "./cli-support.js";
import { type CallProtos, callProtos } from "./call-protos.js";
import { callShape } from "./describe-format.js";
import { dataSource, type InputOptions, readMessageStream, readSingleMessage } from "./json-input.js";
import { protoSources } from "./proto-loader.js";

const USAGE = `usage: ttrpc-es call [ADDRESS] SERVICE/METHOD [--proto FILE [-I DIR]...] [--protoset FILE]
                     [-H KEY=VALUE]... [--namespace NAME] [--timeout DURATION]
                     [-d JSON | -d @FILE | -d @-] [--msg-template] [-v]

Calls SERVICE/METHOD (also SERVICE.METHOD or /SERVICE/METHOD; SERVICE may be a
unique simple name) on the ttrpc server at ADDRESS (a positional argument, as
grpcurl takes it, or --address). Requests and responses are protobuf JSON. A
unary or client-streaming response prints as one indented object;
server-streaming and bidi responses print one object per line as they arrive.
An Any whose type the protos do not define prints as {"@type", "value"}: the
value is its JSON when the bytes are JSON (containerd typeurl JSON types),
else base64. Ctrl-C cancels the call.

options:
  ADDRESS, --address ADDR
                        where the server listens:
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
  --msg-template        print a JSON template of the request message and exit (no ADDRESS needed)
  --keep-type-url       send each Any's "@type" as written; by default it becomes
                        type.googleapis.com/NAME. containerd 1.6 registers bare names
                        (containerd.events.TaskExit) and cannot decode the other form
  --allow-unknown-fields
                        ignore request JSON fields the request message does not define
  --max-msg-size BYTES  the largest message sent or received (default 4 MiB, ttrpc's)
  --emit-defaults       print fields that hold their default values too (JSON)
  --format json|text    how responses print: protobuf JSON (default), or the protobuf
                        text format, each message followed by a blank line
  --format-error        print an RPC error as JSON on stderr: code, name, message, details
  -v, --verbose         print the metadata sent, then the status and the time taken, on stderr

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
  format: { type: "string" },
  "msg-template": { type: "boolean" },
  "keep-type-url": { type: "boolean" },
  "allow-unknown-fields": { type: "boolean" },
  "max-msg-size": { type: "string" },
  "format-error": { type: "boolean" },
  verbose: { type: "boolean", short: "v" },
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

function parseSize(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new CliError(`invalid --max-msg-size "${text}": expected a positive number of bytes`, Exit.usage);
  }
  return n;
}

type CallValues = CommandLine<typeof callOptions>["values"];
type TextPrinter = typeof import("@bufbuild/protobuf/txtpb").toText;

/** What the command line asks for, checked before any descriptor is loaded. */
interface CallPlan {
  address: string | undefined;
  method: string;
  metadata: [string, string][];
  timeoutMs: number | undefined;
  connectTimeoutMs: number;
  maxMessageSize: number | undefined;
}

/** ADDRESS and SERVICE/METHOD from the positionals (grpcurl style) or --address. */
function addressAndMethod(values: CallValues, positionals: string[]): { address: string | undefined; method: string } {
  if (positionals.length === 0) throw new CliError("missing SERVICE/METHOD", Exit.usage);
  if (positionals.length > 2 || (positionals.length === 2 && values.address !== undefined)) {
    throw new CliError(`expected [ADDRESS] SERVICE/METHOD, got ${positionals.join(" ")}`, Exit.usage);
  }
  const address = positionals.length === 2 ? positionals[0] : values.address;
  if (address === undefined && values["msg-template"] !== true) {
    throw new CliError("missing ADDRESS (e.g. ttrpc-es call unix:/run/containerd/s/abc SERVICE/METHOD)", Exit.usage);
  }
  if (address !== undefined) {
    try {
      parseAddress(address);
    } catch (e) {
      throw new CliError(e instanceof TtrpcError ? e.rawMessage : String(e), Exit.usage);
    }
  }
  return { address, method: positionals.at(-1)! };
}

function planCall(values: CallValues, positionals: string[]): CallPlan {
  const { address, method } = addressAndMethod(values, positionals);
  const metadata = (values.header ?? []).map(parseHeader);
  if (values.namespace !== undefined) metadata.push(["containerd-namespace-ttrpc", values.namespace]);
  const timeoutMs = values.timeout === undefined ? undefined : parseDuration(values.timeout);
  if (timeoutMs !== undefined && timeoutMs < 0) throw new CliError(`--timeout must not be negative`, Exit.usage);
  if (values.format !== undefined && values.format !== "json" && values.format !== "text") {
    throw new CliError(`invalid --format "${values.format}": expected json or text`, Exit.usage);
  }
  return {
    address,
    method,
    metadata,
    timeoutMs: timeoutMs === 0 ? undefined : timeoutMs,
    connectTimeoutMs: parseDuration(values["connect-timeout"] ?? "10s"),
    maxMessageSize: values["max-msg-size"] === undefined ? undefined : parseSize(values["max-msg-size"]),
  };
}

async function write(text: string): Promise<void> {
  if (!process.stdout.write(text)) await once(process.stdout, "drain");
}

export function run(argv: string[]): Promise<number> {
  return runCommand("call", async () => {
    const parsed = parseCommandLine(argv, callOptions, USAGE);
    if (parsed === undefined) return Exit.ok;
    const { values, positionals } = parsed;
    const plan = planCall(values, positionals);
    const protos = await callProtos(protoSources(values), plan.method);
    const { method, registry } = protos;
    if (values["msg-template"] === true) {
      const { messageTemplate } = await import("./message-template.js");
      await write(`${JSON.stringify(messageTemplate(method.input, registry), null, 2)}\n`);
      return Exit.ok;
    }
    const input: InputOptions = {
      registry,
      keepTypeUrl: values["keep-type-url"] === true,
      allowUnknownFields: values["allow-unknown-fields"] === true,
    };
    const src = dataSource(values.data);
    const streamingIn = method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming";
    // A single request is read and checked before connecting.
    const single = streamingIn ? undefined : await readSingleMessage(src, method.input, input, () => process.stdin);
    // The text format's printer is loaded only when asked for.
    const toText = values.format === "text" ? (await import("@bufbuild/protobuf/txtpb")).toText : undefined;
    const call = new CallRun(plan, values, protos, toText);
    return call.run(single, () => readMessageStream(src, method.input, input, () => process.stdin, call.onInputClose));
  });
}

/** One call from connect to the last response, with Ctrl-C and -v. */
class CallRun {
  readonly #controller = new AbortController();
  #interrupted = false;
  #closeInput = () => {};
  #inputError: CliError | undefined;
  readonly #started = performance.now();

  constructor(
    readonly plan: CallPlan,
    readonly values: CallValues,
    readonly protos: CallProtos,
    readonly toText: TextPrinter | undefined,
  ) {}

  get method(): DescMethod {
    return this.protos.method;
  }

  get registry(): Registry {
    return this.protos.registry;
  }

  readonly onInputClose = (close: () => void) => {
    this.#closeInput = close;
  };

  // Ctrl-C aborts the call (the runtime fails it with CANCELLED and we close
  // the connection); a second Ctrl-C exits at once.
  readonly #onSigint = () => {
    if (this.#interrupted) process.exit(Exit.interrupted);
    this.#interrupted = true;
    this.#controller.abort();
  };

  #verbose(line: string): void {
    if (this.values.verbose === true) process.stderr.write(`${line}\n`);
  }

  #print(m: Message, indent?: number): string {
    // Text format: each message ends with a blank line, so a stream's messages stay apart.
    if (this.toText !== undefined) return this.toText(this.method.output, m, { registry: this.registry });
    const json = messageJson(this.method.output, m, {
      registry: this.registry,
      emitDefaults: this.values["emit-defaults"] === true,
    });
    return JSON.stringify(json, null, indent);
  }

  async run(single: Message | undefined, inputs: () => AsyncIterable<Message>): Promise<number> {
    process.on("SIGINT", this.#onSigint);
    let client: Client | undefined;
    try {
      client = await this.#connect();
      const m = this.method;
      this.#verbose(`calling ${m.parent.typeName}/${m.name} (${callShape(m)}) on ${this.plan.address}`);
      for (const [k, v] of this.plan.metadata) this.#verbose(`metadata sent: ${k}: ${v}`);
      try {
        await this.#call(client, single, this.#guardInputs(inputs));
      } catch (e) {
        throw await this.#failure(e);
      }
      this.#verbose(`status: OK (${this.#elapsed()})`);
      return Exit.ok;
    } finally {
      process.off("SIGINT", this.#onSigint);
      this.#closeInput();
      client?.close();
    }
  }

  #elapsed(): string {
    return `${(performance.now() - this.#started).toFixed(1)} ms`;
  }

  async #connect(): Promise<Client> {
    const { address, connectTimeoutMs, maxMessageSize } = this.plan;
    try {
      return await connect(address!, {
        connectTimeoutMs,
        signal: this.#controller.signal,
        ...(maxMessageSize === undefined ? {} : { maxMessageSize }),
      });
    } catch (e) {
      if (this.#interrupted) throw new CliError("interrupted", Exit.interrupted);
      const err = TtrpcError.from(e);
      throw new CliError(`${err.rawMessage}; is the server running and the address right?`, Exit.connect);
    }
  }

  async *#guardInputs(inputs: () => AsyncIterable<Message>): AsyncGenerator<Message> {
    try {
      yield* inputs();
    } catch (e) {
      if (e instanceof CliError) this.#inputError = e;
      throw e;
    }
  }

  async #call(client: Client, single: Message | undefined, inputs: AsyncIterable<Message>): Promise<void> {
    const options = {
      signal: this.#controller.signal,
      metadata: this.plan.metadata,
      ...(this.plan.timeoutMs === undefined ? {} : { timeoutMs: this.plan.timeoutMs }),
    };
    const m = this.method;
    switch (m.methodKind) {
      case "unary":
        await write(`${this.#print(await client.unary(m as DescMethodUnary, single!, options), 2)}\n`);
        break;
      case "client_streaming":
        await write(`${this.#print(await client.clientStream(m as DescMethodClientStreaming, inputs, options), 2)}\n`);
        break;
      case "server_streaming":
        for await (const res of client.serverStream(m as DescMethodServerStreaming, single!, options)) {
          await write(`${this.#print(res)}\n`);
        }
        break;
      case "bidi_streaming":
        for await (const res of client.bidiStream(m as DescMethodBiDiStreaming, inputs, options)) {
          await write(`${this.#print(res)}\n`);
        }
        break;
    }
  }

  /** The CliError a failed call ends with. */
  async #failure(e: unknown): Promise<CliError> {
    if (e instanceof CliError) return e;
    if (this.#inputError !== undefined) return this.#inputError;
    const m = this.method;
    if (this.#interrupted) {
      return new CliError(
        `interrupted; ${callShape(m)} call ${m.parent.typeName}/${m.name} cancelled`,
        Exit.interrupted,
      );
    }
    const err = TtrpcError.from(e);
    this.#verbose(`status: ${codeName(err.code)} (${this.#elapsed()})`);
    if (err.code === Code.Unavailable && (await (await import("./http2-probe.js")).speaksHttp2(this.plan.address!))) {
      return new CliError(
        `${this.plan.address} is a gRPC socket, not ttrpc: it answered with an HTTP/2 preface ` +
          "(containerd's ttrpc socket is the one ending in .ttrpc)",
        Exit.connect,
      );
    }
    const status = Exit.rpcBase + (err.code === Code.Ok ? Code.Unknown : err.code);
    // Details are Anys of any type: print them with every type known.
    const registry = err.details.length > 0 ? await this.protos.fullRegistry() : this.registry;
    if (this.values["format-error"] === true) return new CliError(this.#errorJson(err, registry), status, true);
    let text = `rpc error: code = ${codeName(err.code)} desc = ${err.rawMessage}`;
    for (const d of err.details) text += `\n  detail: ${anyJson(d, registry)}`;
    return new CliError(text, status);
  }

  #errorJson(err: TtrpcError, registry: Registry): string {
    const details = err.details.map((d) => JSON.parse(anyJson(d, registry)) as unknown);
    return JSON.stringify({ code: err.code, name: codeName(err.code), message: err.rawMessage, details }, null, 2);
  }
}
