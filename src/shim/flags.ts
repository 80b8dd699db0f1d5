// The shim's command line, as containerd writes it and Go's `flag` package
// reads it: `-name value`, `--name value` or `-name=value`, booleans bare,
// flags before the action (start, delete, or none for the long-lived server).
import { ShimError } from "./shim-error.js";

/** What containerd asked a shim binary to do. */
export type ShimAction = "start" | "delete" | "serve";

/** The parsed command line of a shim binary. */
export interface ShimArgs {
  readonly namespace: string;
  readonly id: string;
  /** containerd's gRPC address (`-address`). */
  readonly address: string;
  /** containerd's own binary (`-publish-binary`). */
  readonly publishBinary: string;
  /** `-bundle`, given to `delete`; otherwise the working directory is the bundle. */
  readonly bundle: string;
  readonly debug: boolean;
  /** `-socket`: the socket the long-lived server listens on (set by `start`). */
  readonly socket: string;
  readonly info: boolean;
  readonly version: boolean;
  readonly action: ShimAction;
}

const STRING_FLAGS = {
  namespace: "namespace",
  id: "id",
  address: "address",
  "publish-binary": "publishBinary",
  bundle: "bundle",
  socket: "socket",
} as const;
const BOOL_FLAGS = { debug: "debug", info: "info", v: "version", version: "version" } as const;
type Mutable = { -readonly [K in keyof ShimArgs]: ShimArgs[K] };

function isBoolFlag(name: string): name is keyof typeof BOOL_FLAGS {
  return Object.hasOwn(BOOL_FLAGS, name);
}
function isStringFlag(name: string): name is keyof typeof STRING_FLAGS {
  return Object.hasOwn(STRING_FLAGS, name);
}

function parseBool(name: string, value: string): boolean {
  if (["1", "t", "T", "true", "TRUE", "True"].includes(value)) return true;
  if (["0", "f", "F", "false", "FALSE", "False"].includes(value)) return false;
  throw new ShimError("bad-flags", `invalid boolean value "${value}" for -${name}`);
}

/** Parses a shim's argv (without node and the script). Unknown flags are an error, as in Go. */
export function parseShimArgs(argv: readonly string[]): ShimArgs {
  const out: Mutable = {
    namespace: "",
    id: "",
    address: "",
    publishBinary: "",
    bundle: "",
    debug: false,
    socket: "",
    info: false,
    version: false,
    action: "serve",
  };
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      i++;
      break;
    }
    if (!arg.startsWith("-") || arg === "-") break;
    const body = arg.replace(/^--?/, "");
    const eq = body.indexOf("=");
    const name = eq < 0 ? body : body.slice(0, eq);
    if (isBoolFlag(name)) {
      out[BOOL_FLAGS[name]] = eq < 0 ? true : parseBool(name, body.slice(eq + 1));
    } else if (isStringFlag(name)) {
      const value = eq >= 0 ? body.slice(eq + 1) : argv[++i];
      if (value === undefined) throw new ShimError("bad-flags", `flag needs an argument: -${name}`);
      out[STRING_FLAGS[name]] = value;
    } else {
      throw new ShimError("bad-flags", `flag provided but not defined: -${name}`);
    }
  }
  const action = argv[i];
  if (action !== undefined) {
    if (action !== "start" && action !== "delete") throw new ShimError("bad-action", `unknown action "${action}"`);
    out.action = action;
  }
  return out;
}
