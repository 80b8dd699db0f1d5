// koffi, the FFI package that reaches libc where Node has no API (peer
// credentials, the shim's child reaping and terminals, descriptor passing), is an
// optional dependency: it is imported on first use, never at load time, and
// typed here by the part of it we use, so neither the build nor a user's type
// check depends on its types.

/** A loaded library: `func` by name, result and argument types, or by one C prototype. */
export interface KoffiLibrary {
  func(name: string, result: string, args: string[]): unknown;
  func(prototype: string): unknown;
}

/** The part of koffi ttrpc-es uses. */
export interface Koffi {
  load(path: null): KoffiLibrary;
  struct(name: string, fields: Record<string, string>): unknown;
  errno(): number;
}

const KOFFI = "koffi"; // a variable: bundlers and tsc leave the optional import alone

/** koffi's module, imported once; rejects (each time it is asked) when it is not installed. */
export function loadKoffi(): Promise<Koffi> {
  return (import(KOFFI) as Promise<Koffi & { default?: Koffi }>).then((mod) => mod.default ?? mod);
}

/**
 * A binding made from koffi on first use and kept: `bind` gets the module.
 * Without koffi the returned loader rejects with `missing(cause)`, and tries
 * the import again when asked again.
 */
export function koffiBinding<T>(bind: (koffi: Koffi) => T, missing: (cause: unknown) => Error): () => Promise<T> {
  let binding: Promise<T> | undefined;
  return () => {
    binding ??= loadKoffi().then(bind, (e: unknown) => {
      binding = undefined;
      throw missing(e);
    });
    return binding;
  };
}
