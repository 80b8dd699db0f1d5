/** What a call's metadata can be given as. */
export type MetadataInit = Metadata | Record<string, string | readonly string[]> | Iterable<readonly [string, string]>;

/**
 * ttrpc request metadata: multi-valued, keys lower-cased on every path (the Go
 * implementation lower-cases in Get/Set but not on receive; we do it
 * everywhere, so `get("Foo")` and a received `Foo` always meet). Only requests
 * carry metadata; the protocol has no response headers or trailers.
 */
export class Metadata {
  // Made on first write: most calls carry no metadata, and interceptors get a copy of every call's.
  #m: Map<string, string[]> | undefined;

  get #map(): Map<string, string[]> {
    this.#m ??= new Map();
    return this.#m;
  }

  constructor(init?: MetadataInit) {
    if (init === undefined) return;
    if (init instanceof Metadata) {
      if (init.#m !== undefined) for (const [k, v] of init.#m) this.#map.set(k, [...v]);
    } else if (Symbol.iterator in init) {
      for (const [k, v] of init as Iterable<readonly [string, string]>) this.append(k, v);
    } else {
      for (const [k, v] of Object.entries(init)) {
        if (typeof v === "string") this.append(k, v);
        else for (const x of v) this.append(k, x);
      }
    }
  }

  /** The first value of a key. */
  get(key: string): string | undefined {
    return this.#m?.get(key.toLowerCase())?.[0];
  }

  /** Every value of a key, in arrival order. */
  getAll(key: string): string[] {
    return [...(this.#m?.get(key.toLowerCase()) ?? [])];
  }

  /** Whether the key has a value (keys are case-insensitive). */
  has(key: string): boolean {
    return this.#m?.has(key.toLowerCase()) ?? false;
  }

  /** Replaces the values of a key; no values deletes it. */
  set(key: string, ...values: string[]): this {
    if (values.length === 0) this.#m?.delete(key.toLowerCase());
    else this.#map.set(key.toLowerCase(), [...values]);
    return this;
  }

  /** Adds values after those the key already has. */
  append(key: string, ...values: string[]): this {
    const k = key.toLowerCase();
    const cur = this.#m?.get(k);
    if (cur) cur.push(...values);
    else if (values.length > 0) this.#map.set(k, [...values]);
    return this;
  }

  /** Removes a key and all its values; false when it had none. */
  delete(key: string): boolean {
    return this.#m?.delete(key.toLowerCase()) ?? false;
  }

  /** The number of keys (not values). */
  get size(): number {
    return this.#m?.size ?? 0;
  }

  /** Every key/value pair, one pair per value, as they go on the wire. */
  *entries(): IterableIterator<[string, string]> {
    if (this.#m !== undefined) for (const [k, vs] of this.#m) for (const v of vs) yield [k, v];
  }

  /** The same pairs as {@link Metadata.entries}. */
  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }

  /** An independent copy. */
  clone(): Metadata {
    return new Metadata(this);
  }

  /** A plain object, one array of values per key (handy for logs and JSON). */
  toJSON(): Record<string, string[]> {
    return Object.fromEntries([...(this.#m ?? [])].map(([k, v]) => [k, [...v]]));
  }
}
