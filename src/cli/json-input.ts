// Request data for `call`: JSON text from -d, a file or stdin, parsed into
// messages with positions in the errors ("line 3, column 14").

import { createReadStream, readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { fromJson, type DescMessage, type JsonValue, type Message, type Registry } from "@bufbuild/protobuf";
import { reflect, type ReflectMessage } from "@bufbuild/protobuf/reflect";
import type { Any } from "@bufbuild/protobuf/wkt";
import { CliError, Exit } from "./cli-support.js";

/**
 * Where the first JSON syntax error of `s` is: an offset into `s`, or
 * `s.length` when the text ends too early, or undefined when `s` is one valid
 * JSON value. `extra` is set when a valid value is followed by more text.
 */
export function jsonErrorOffset(s: string): { offset: number; extra: boolean } | undefined {
  let i = 0;
  const ws = () => {
    while (i < s.length && " \t\r\n".includes(s[i]!)) i++;
  };
  const fail = (at = i): never => {
    throw at;
  };
  const literal = (word: string) => {
    for (const ch of word) if (s[i++] !== ch) fail(i - 1);
  };
  const string = () => {
    i++;
    for (;;) {
      if (i >= s.length) fail();
      const c = s[i]!;
      if (c === '"') return void i++;
      if (c < " ") fail();
      if (c === "\\") {
        i++;
        if (s[i] === "u") {
          if (!/^[0-9a-fA-F]{4}$/.test(s.slice(i + 1, i + 5))) fail(i);
          i += 5;
        } else if (i < s.length && '"\\/bfnrt'.includes(s[i]!)) i++;
        else fail();
      } else i++;
    }
  };
  const value = (): void => {
    ws();
    const c = s[i];
    if (c === undefined) fail();
    if (c === "{") {
      i++;
      ws();
      if (s[i] === "}") return void i++;
      for (;;) {
        ws();
        if (s[i] !== '"') fail();
        string();
        ws();
        if (s[i] !== ":") fail();
        i++;
        value();
        ws();
        if (s[i] === ",") i++;
        else if (s[i] === "}") return void i++;
        else fail();
      }
    }
    if (c === "[") {
      i++;
      ws();
      if (s[i] === "]") return void i++;
      for (;;) {
        value();
        ws();
        if (s[i] === ",") i++;
        else if (s[i] === "]") return void i++;
        else fail();
      }
    }
    if (c === '"') {
      string();
      return;
    }
    if (c === "t") {
      literal("true");
      return;
    }
    if (c === "f") {
      literal("false");
      return;
    }
    if (c === "n") {
      literal("null");
      return;
    }
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(s.slice(i));
    if (m === null || m[0] === "" || m[0] === "-") fail();
    i += m![0].length;
  };
  try {
    value();
    ws();
    return i < s.length ? { offset: i, extra: true } : undefined;
  } catch (at) {
    if (typeof at !== "number") throw at;
    return { offset: Math.min(at, s.length), extra: false };
  }
}

/** `line L, column C` of an offset, counting from `firstLine`. */
function position(s: string, offset: number, firstLine: number): string {
  const before = s.slice(0, offset);
  const line = firstLine + (before.match(/\n/g)?.length ?? 0);
  const column = offset - (before.lastIndexOf("\n") + 1) + 1;
  return `line ${line}, column ${column}`;
}

function describeSyntaxError(s: string, offset: number): string {
  if (offset >= s.length) return "unexpected end of input";
  const ch = s.codePointAt(offset)!;
  return `unexpected ${JSON.stringify(String.fromCodePoint(ch))}`;
}

/** The request data as `-d` gave it. */
export type DataSource =
  | { kind: "text"; text: string; name: string }
  | { kind: "file"; path: string }
  | { kind: "stdin" }
  | { kind: "none" };

export function dataSource(d: string | undefined): DataSource {
  if (d === undefined) return { kind: "none" };
  if (d === "@-") return { kind: "stdin" };
  if (d.startsWith("@")) return { kind: "file", path: d.slice(1) };
  return { kind: "text", text: d, name: "-d" };
}

function sourceName(src: DataSource): string {
  return src.kind === "file" ? src.path : src.kind === "stdin" ? "stdin" : "-d";
}

async function readAll(src: DataSource, stdin: () => Readable): Promise<string> {
  switch (src.kind) {
    case "none":
      return "{}";
    case "text":
      return src.text;
    case "file":
      try {
        return readFileSync(src.path, "utf8");
      } catch (e) {
        throw new CliError(
          `cannot read request data ${src.path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
          Exit.badInput,
        );
      }
    case "stdin": {
      const chunks: Buffer[] = [];
      for await (const c of stdin()) chunks.push(c as Buffer);
      return Buffer.concat(chunks).toString("utf8");
    }
  }
}

/** How request JSON becomes messages. */
export interface InputOptions {
  registry: Registry;
  /**
   * Send each Any's `@type` exactly as written. protobuf JSON resolves it and
   * writes `type.googleapis.com/NAME`; containerd 1.6 registers bare names
   * (`containerd.events.TaskExit`) and cannot decode the rewritten URL.
   */
  keepTypeUrl?: boolean;
  /** Ignore JSON fields the message does not define (grpcurl's -allow-unknown-fields). */
  allowUnknownFields?: boolean;
}

/** Sets each Any's type URL below `r` to the `@type` its JSON gave, walking message and JSON together. */
function restoreTypeUrls(r: ReflectMessage, json: JsonValue | undefined): void {
  if (json === null || typeof json !== "object" || Array.isArray(json)) return;
  if (r.desc.typeName === "google.protobuf.Any") {
    const t = json["@type"];
    if (typeof t === "string") (r.message as Any).typeUrl = t;
    return;
  }
  for (const f of r.fields) {
    if (!r.isSet(f)) continue;
    const j = json[f.jsonName] ?? json[f.name];
    if (f.fieldKind === "message") restoreTypeUrls(r.get(f), j);
    else if (f.fieldKind === "list" && f.listKind === "message" && Array.isArray(j)) {
      let i = 0;
      for (const m of r.get(f)) restoreTypeUrls(m as ReflectMessage, j[i++]);
    } else if (f.fieldKind === "map" && f.mapKind === "message" && j !== null && typeof j === "object") {
      for (const [k, m] of r.get(f)) restoreTypeUrls(m as ReflectMessage, (j as Record<string, JsonValue>)[String(k)]);
    }
  }
}

function toMessage(desc: DescMessage, json: JsonValue, options: InputOptions, where: string): Message {
  try {
    const message = fromJson(desc, json, {
      registry: options.registry,
      ignoreUnknownFields: options.allowUnknownFields === true,
    });
    if (options.keepTypeUrl === true) restoreTypeUrls(reflect(desc, message), json);
    return message;
  } catch (e) {
    throw new CliError(
      `request data (${where}) is not a valid ${desc.typeName}: ${(e as Error).message}`,
      Exit.badInput,
    );
  }
}

function parseOne(text: string, source: string, firstLine: number): JsonValue {
  const err = jsonErrorOffset(text);
  if (err === undefined) return JSON.parse(text) as JsonValue;
  const where = `${source}, ${position(text, err.offset, firstLine)}`;
  if (err.extra)
    throw new CliError(`malformed JSON (${where}): unexpected data after the end of the message`, Exit.badInput);
  throw new CliError(`malformed JSON (${where}): ${describeSyntaxError(text, err.offset)}`, Exit.badInput);
}

/** The one request message of a unary or server-streaming call (`{}` without -d). */
export async function readSingleMessage(
  src: DataSource,
  desc: DescMessage,
  options: InputOptions,
  stdin: () => Readable,
): Promise<Message> {
  const text = await readAll(src, stdin);
  const name = sourceName(src);
  if (text.trim() === "") return toMessage(desc, {}, options, name);
  const err = jsonErrorOffset(text);
  if (err?.extra === true) {
    throw new CliError(
      `malformed JSON (${name}, ${position(text, err.offset, 1)}): ` +
        `a ${desc.typeName} request takes one JSON object, found more data after it`,
      Exit.badInput,
    );
  }
  return toMessage(desc, parseOne(text, name, 1), options, `${name}, line 1`);
}

async function* lines(
  src: DataSource,
  stdin: () => Readable,
  onClose: (close: () => void) => void,
): AsyncGenerator<string> {
  if (src.kind === "none") return;
  if (src.kind === "text") {
    yield* src.text.split("\n");
    return;
  }
  const input = src.kind === "stdin" ? stdin() : createReadStream(src.path);
  const errors: Error[] = [];
  input.on("error", (e: Error) => errors.push(e));
  const rl = createInterface({ input, crlfDelay: Infinity });
  onClose(() => {
    rl.close();
    input.destroy();
  });
  try {
    for await (const l of rl) yield l;
  } catch (e) {
    errors.push(e as Error);
  } finally {
    rl.close();
  }
  if (errors.length > 0) {
    const e = errors[0] as NodeJS.ErrnoException;
    throw new CliError(`cannot read request data ${sourceName(src)}: ${e.code ?? e.message}`, Exit.badInput);
  }
}

/**
 * The request messages of a client-streaming or bidi call: newline-delimited
 * JSON, read as it arrives (so `-d @-` works interactively). An object may
 * span lines. Errors are CliErrors with `Exit.badInput` naming the line.
 */
export async function* readMessageStream(
  src: DataSource,
  desc: DescMessage,
  options: InputOptions,
  stdin: () => Readable,
  onClose: (close: () => void) => void = () => {},
): AsyncGenerator<Message> {
  const name = sourceName(src);
  let buffer = "";
  let startLine = 0;
  let lineNo = 0;
  for await (const line of lines(src, stdin, onClose)) {
    lineNo++;
    if (buffer === "") {
      if (line.trim() === "") continue;
      startLine = lineNo;
      buffer = line;
    } else buffer += `\n${line}`;
    const err = jsonErrorOffset(buffer);
    if (err !== undefined && !err.extra && err.offset >= buffer.length) continue; // an object spanning lines
    const json = parseOne(buffer, name, startLine);
    const where = startLine === lineNo ? `${name}, line ${startLine}` : `${name}, lines ${startLine}-${lineNo}`;
    buffer = "";
    yield toMessage(desc, json, options, where);
  }
  if (buffer.trim() !== "") parseOne(buffer, name, startLine);
}
