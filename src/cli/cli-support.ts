// What `call`, `list` and `describe` share: exit statuses, the error type
// that carries one, argument parsing, Go-style durations and "did you mean".

import { type ParseArgsConfig, parseArgs } from "node:util";

/** Exit statuses of `call`, `list` and `describe`. RPC errors exit with 64 + the status code. */
export const Exit = {
  ok: 0,
  /** A bug or an unexpected failure (the message says what). */
  internal: 1,
  /** Bad command line: unknown option, missing argument, bad duration or address. */
  usage: 2,
  /** The .proto files or the FileDescriptorSet cannot be read or compiled, or buf is missing. */
  protos: 3,
  /** The service, method or symbol is not in the protos (close matches are listed). */
  unknownSymbol: 4,
  /** The request data cannot be read, is not JSON, or does not fit the request message. */
  badInput: 5,
  /** Cannot connect to the address. */
  connect: 6,
  /** Interrupted by Ctrl-C (SIGINT), as shells report it: 128 + 2. */
  interrupted: 130,
  /** An RPC error: 64 + the ttrpc status code (65 CANCELLED … 80 UNAUTHENTICATED). */
  rpcBase: 64,
} as const;

/** The exit-status table printed by `--help`. */
export const EXIT_STATUS_HELP = `exit status:
  0       OK
  1       unexpected failure
  2       usage error (options, arguments, duration, address, -H)
  3       protos unreadable: file not found, compile error, bad --protoset, buf not installed
  4       unknown service, method or symbol (close matches are listed)
  5       request data unreadable, malformed JSON, or not the request message
  6       cannot connect to the address
  64+N    the call failed with ttrpc status code N (e.g. 68 DEADLINE_EXCEEDED, 76 UNIMPLEMENTED)
  130     interrupted (Ctrl-C)
`;

/** An error that ends a command with the given exit status and a message for people. */
export class CliError extends Error {
  override name = "CliError";
  constructor(
    message: string,
    readonly status: number,
    /** Print the message as it is, without the `ttrpc-es COMMAND:` prefix (machine-readable output). */
    readonly bare = false,
  ) {
    super(message);
  }
}

/** Options every proto-reading command takes. */
export const protoOptions = {
  proto: { type: "string", multiple: true },
  "import-path": { type: "string", short: "I", multiple: true },
  protoset: { type: "string", multiple: true },
  help: { type: "boolean", short: "h" },
} as const satisfies ParseArgsConfig["options"];

export const PROTO_OPTIONS_HELP = `  (built in, no --proto needed: containerd's task v2 and v3, events, sandbox and
   streaming services, NRI and hcsshim's Migration; --proto and --protoset add
   services, and their types override the built-in ones of the same name)
  --proto FILE          a .proto file, resolved against the -I directories
                        (the current directory when no -I is given); repeatable. What buf
                        compiles is cached in $XDG_CACHE_HOME/ttrpc-es (TTRPC_ES_CACHE_DIR
                        moves it, TTRPC_ES_NO_CACHE=1 turns it off)
  -I, --import-path DIR where imports are looked up (like protoc -I); repeatable
  --protoset FILE       a FileDescriptorSet (buf build -o x.binpb, protoc --include_imports -o);
                        repeatable, may be combined with --proto
  -h, --help            this help
`;

type OptionsConfig = NonNullable<ParseArgsConfig["options"]>;
/** What {@link parseCommandLine} returns for a command's options. */
export type CommandLine<T extends OptionsConfig> = ReturnType<
  typeof parseArgs<{ args: string[]; options: T; allowPositionals: true; strict: true }>
>;

/**
 * The prologue every command shares: parses argv against `options` (which
 * include `help`), turning parse errors into usage errors. Returns undefined
 * after printing `usage` when --help was given.
 */
export function parseCommandLine<const T extends OptionsConfig>(
  argv: string[],
  options: T,
  usage: string,
): CommandLine<T> | undefined {
  const parsed = usageErrors(() => parseArgs({ args: argv, options, allowPositionals: true, strict: true }));
  if ((parsed.values as { help?: unknown }).help === true) {
    process.stdout.write(usage);
    return undefined;
  }
  return parsed;
}

/** Runs parseArgs (or anything), its errors turned into usage errors. */
export function usageErrors<T>(parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    throw new CliError((e as Error).message, Exit.usage);
  }
}

/**
 * Runs a command body: prints a CliError's message to stderr and returns its
 * status (a usage error adds one line pointing at --help, not the whole help);
 * anything else is a bug (exit 1, with the stack).
 */
export async function runCommand(name: string, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (e) {
    if (e instanceof CliError) {
      process.stderr.write(e.bare ? `${e.message}\n` : `ttrpc-es ${name}: ${e.message}\n`);
      if (e.status === Exit.usage) process.stderr.write(`Run 'ttrpc-es ${name} --help' for usage.\n`);
      return e.status;
    }
    process.stderr.write(
      `ttrpc-es ${name}: unexpected error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
    );
    return Exit.internal;
  }
}

const units: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * Parses a Go duration (`time.ParseDuration`): `500ms`, `5s`, `1m30s`,
 * `1.5h`, `300us`; a bare `0` is zero. Returns milliseconds.
 */
export function parseDuration(text: string): number {
  const bad = () =>
    new CliError(`invalid duration "${text}": expected a Go duration such as 500ms, 5s or 1m30s`, Exit.usage);
  let s = text.trim();
  let sign = 1;
  if (s.startsWith("-") || s.startsWith("+")) {
    if (s[0] === "-") sign = -1;
    s = s.slice(1);
  }
  if (s === "0") return 0;
  if (s === "") throw bad();
  let total = 0;
  const re = /^(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/;
  while (s !== "") {
    const m = re.exec(s);
    if (m === null) throw bad();
    total += Number(m[1]) * units[m[2]!]!;
    s = s.slice(m[0].length);
  }
  return sign * total;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/**
 * The candidates close to `wanted`: equal ignoring case, containing it or
 * contained in it (ignoring case), or within a small edit distance; best first.
 * `key` picks what is compared (e.g. the last name component).
 */
export function closeMatches(
  wanted: string,
  candidates: readonly string[],
  key: (c: string) => string = (c) => c,
): string[] {
  const w = wanted.toLowerCase();
  if (w === "") return [];
  const scored: { c: string; score: number }[] = [];
  for (const c of candidates) {
    const k = key(c).toLowerCase();
    const full = c.toLowerCase();
    let score: number | undefined;
    if (k === w || full === w) score = 0;
    else if (k.includes(w) || w.includes(k) || full.includes(w)) score = 1;
    else {
      const d = Math.min(editDistance(w, k), editDistance(w, full));
      if (d <= Math.max(2, Math.floor(w.length / 3))) score = 1 + d;
    }
    if (score !== undefined) scored.push({ c, score });
  }
  return scored
    .sort((x, y) => x.score - y.score || x.c.localeCompare(y.c))
    .slice(0, 8)
    .map((s) => s.c);
}

/** A sentence listing close matches, or the available names when there are few. */
export function suggestionText(
  wanted: string,
  candidates: readonly string[],
  what: string,
  key?: (c: string) => string,
): string {
  const close = closeMatches(wanted, candidates, key);
  if (close.length > 0) return `did you mean:\n${close.map((c) => `  ${c}`).join("\n")}`;
  if (candidates.length === 0) return `the protos define no ${what}`;
  if (candidates.length <= 12) return `available ${what}:\n${candidates.map((c) => `  ${c}`).join("\n")}`;
  return `${candidates.length} ${what} are defined; see 'ttrpc-es list'`;
}
