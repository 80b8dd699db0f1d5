// What `--proto` compiles, kept on disk so that a repeated command does not
// run buf: one entry per set of import roots, target files and buf binary,
// valid while every file the compile read still has the same contents and is
// still found below the same root. The entry keeps those contents and compares
// them byte for byte: node:crypto would cost a cold call more to load than the
// comparison takes. Entries are written whole (a temporary
// file renamed over the old one), and one that cannot be read or no longer
// matches is ignored and compiled again. Caching is best effort: a cache
// directory that cannot be written leaves the command working, uncached.

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

/** A file a compile read, by import name: the root it was found below (-1: built into buf) and its bytes (latin1). */
interface Source {
  name: string;
  root: number;
  bytes: string;
}

interface Entry {
  /** What the entry is for, in full: its file name is only a hash of it. */
  key: string;
  sources: Source[];
  /** The FileDescriptorSet, base64. */
  set: string;
}

/** 32-bit FNV-1a of `s` from `seed`, as 8 hex digits. */
function fnv1a(s: string, seed: number): string {
  let h = seed;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, "0");
}

/** What identifies a compiler binary without running it: its path, size and modification time. */
export function compilerIdentity(command: string, args: readonly string[]): string {
  const s = statSync(command);
  return [command, ...args, s.size, s.mtimeMs].join("\0");
}

/** The cache entry of one compile: import roots, targets (`i<root>/<name>`) and compiler. */
export class ProtoCache {
  readonly #key: string;
  readonly #path: string;

  constructor(
    readonly dir: string,
    readonly roots: readonly string[],
    targets: readonly string[],
    compiler: string,
  ) {
    this.#key = JSON.stringify({ FORMAT, roots, targets, compiler });
    this.#path = join(dir, `${fnv1a(this.#key, 0x811c9dc5)}${fnv1a(this.#key, 0x050c5d1f)}.json`);
  }

  /** Where the file `name` is found, as protoc looks: the first root that has it; -1 when none does. */
  #source(name: string): Source {
    for (const [root, dir] of this.roots.entries()) {
      let bytes: string;
      try {
        bytes = readFileSync(join(dir, name), "latin1");
      } catch {
        continue;
      }
      return { name, root, bytes };
    }
    return { name, root: -1, bytes: "" };
  }

  /** The cached FileDescriptorSet, when there is an entry and its files are unchanged. */
  get(): Uint8Array | undefined {
    try {
      const entry = JSON.parse(readFileSync(this.#path, "utf8")) as Entry;
      if (entry.key !== this.#key || !Array.isArray(entry.sources) || typeof entry.set !== "string") return undefined;
      for (const s of entry.sources) {
        const now = this.#source(s.name);
        if (now.root !== s.root || now.bytes !== s.bytes) return undefined;
      }
      return Buffer.from(entry.set, "base64");
    } catch {
      return undefined; // missing, unreadable or corrupt: compile again
    }
  }

  /** Stores a compile's FileDescriptorSet and the names of the files in it. */
  put(set: Uint8Array, names: readonly string[]): void {
    const entry: Entry = {
      key: this.#key,
      sources: names.map((n) => this.#source(n)),
      set: Buffer.from(set).toString("base64"),
    };
    const tmp = `${this.#path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    try {
      mkdirSync(this.dir, { recursive: true });
      writeFileSync(tmp, JSON.stringify(entry));
      renameSync(tmp, this.#path);
    } catch {
      rmSync(tmp, { force: true }); // no cache this time
    }
  }
}
