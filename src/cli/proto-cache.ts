// What `--proto` compiles, kept on disk so that a repeated command does not
// run buf: one entry per set of import roots, target files and buf binary,
// valid while every file the compile read still has the same contents and is
// still found below the same root. Entries are written whole (a temporary
// file renamed over the old one), and one that cannot be read or no longer
// matches is ignored and compiled again. Caching is best effort: a cache
// directory that cannot be written leaves the command working, uncached.

import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

/** Bumped when what an entry holds changes, so old entries miss. */
const FORMAT = 1;

/**
 * The cache directory: $TTRPC_ES_CACHE_DIR, else $XDG_CACHE_HOME/ttrpc-es,
 * else ~/.cache/ttrpc-es; undefined (no cache) when TTRPC_ES_NO_CACHE is set
 * to anything but "" or "0".
 */
export function protoCacheDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const off = env.TTRPC_ES_NO_CACHE;
  if (off !== undefined && off !== "" && off !== "0") return undefined;
  if (env.TTRPC_ES_CACHE_DIR) return env.TTRPC_ES_CACHE_DIR;
  return join(env.XDG_CACHE_HOME || join(homedir(), ".cache"), "ttrpc-es");
}

/** A file a compile read, by import name: the root it was found below (-1: built into buf) and its digest. */
interface Source {
  name: string;
  root: number;
  sha256: string;
}

interface Entry {
  format: number;
  sources: Source[];
  /** The FileDescriptorSet, base64. */
  set: string;
}

const digest = (data: string | Uint8Array) => createHash("sha256").update(data).digest("hex");

/** What identifies a compiler binary without running it: its path, size and modification time. */
export function compilerIdentity(command: string, args: readonly string[]): string {
  const s = statSync(command);
  return [command, ...args, s.size, s.mtimeMs].join("\0");
}

/** The cache entry of one compile: import roots, targets (`i<root>/<name>`) and compiler. */
export class ProtoCache {
  readonly #path: string;

  constructor(
    readonly dir: string,
    readonly roots: readonly string[],
    targets: readonly string[],
    compiler: string,
  ) {
    this.#path = join(dir, `${digest(JSON.stringify({ FORMAT, roots, targets, compiler }))}.json`);
  }

  /** Where the file `name` is found, as protoc looks: the first root that has it; -1 when none does. */
  #source(name: string): Source {
    for (const [root, dir] of this.roots.entries()) {
      let data: Buffer;
      try {
        data = readFileSync(join(dir, name));
      } catch {
        continue;
      }
      return { name, root, sha256: digest(data) };
    }
    return { name, root: -1, sha256: "" };
  }

  /** The cached FileDescriptorSet, when there is an entry and its files are unchanged. */
  get(): Uint8Array | undefined {
    try {
      const entry = JSON.parse(readFileSync(this.#path, "utf8")) as Entry;
      if (entry.format !== FORMAT || !Array.isArray(entry.sources) || typeof entry.set !== "string") return undefined;
      for (const s of entry.sources) {
        const now = this.#source(s.name);
        if (now.root !== s.root || now.sha256 !== s.sha256) return undefined;
      }
      return Buffer.from(entry.set, "base64");
    } catch {
      return undefined; // missing, unreadable or corrupt: compile again
    }
  }

  /** Stores a compile's FileDescriptorSet and the names of the files in it. */
  put(set: Uint8Array, names: readonly string[]): void {
    const entry: Entry = {
      format: FORMAT,
      sources: names.map((n) => this.#source(n)),
      set: Buffer.from(set).toString("base64"),
    };
    const tmp = `${this.#path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
    try {
      mkdirSync(this.dir, { recursive: true });
      writeFileSync(tmp, JSON.stringify(entry));
      renameSync(tmp, this.#path);
    } catch {
      rmSync(tmp, { force: true }); // no cache this time
    }
  }
}
