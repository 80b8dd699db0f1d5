import { statSync } from "node:fs";
import { resolve } from "node:path";

/** The options of protoc-gen-ttrpc-es, beside protoplugin's standard ones. */
export interface Options {
  /** A folder of templates that replace the built-in ones (absolute), or undefined. */
  templates: string | undefined;
  /** Prepended to the service name in every generated declaration (not on the wire). */
  prefix: string;
  /** Appended to the service name in every generated declaration (not on the wire). */
  suffix: string;
  /** The module the runtime types (`Client`, `Server`, ...) are imported from. */
  runtimeImport: string;
}

/** Each option with the values it accepts, as error messages show them. */
export const optionHelp: Readonly<Record<string, string>> = {
  templates: "templates=<folder with *.hbs files>",
  prefix: "prefix=<identifier start, e.g. TTRPC>",
  suffix: "suffix=<identifier characters, e.g. V2>",
  runtime_import: "runtime_import=<module specifier, default ttrpc-es>",
};

const standardOptions =
  "target, import_extension, js_import_style, ts_nocheck, elide_plugin_version, keep_empty_files, map_imports";

// protoplugin parses the standard options itself and rejects a bad value
// with only `invalid option "target=java"`; these complete such messages.
const standardValues: Readonly<Record<string, string>> = {
  target: "ts, js, dts, or a combination with + (js+dts)",
  import_extension: "none, js, ts",
  js_import_style: "module, legacy_commonjs",
  ts_nocheck: "true, false",
  elide_plugin_version: "true, false",
  keep_empty_files: "true, false",
  map_imports: "<pattern>:<target>",
};

/** Adds the accepted values to protoplugin's error for a malformed standard option. */
export function explainOptionError(e: unknown): unknown {
  if (!(e instanceof Error) || e.name !== "PluginOptionError") {
    return e;
  }
  const key = /^invalid option "([^="]+)=?[^"]*"$/.exec(e.message)?.[1];
  const accepted = key === undefined ? undefined : standardValues[key];
  if (accepted !== undefined) {
    e.message += `: ${key} accepts ${accepted}`;
  }
  return e;
}

/**
 * Parses the plugin's own options. protoplugin handles the standard ones
 * and hands over the rest; anything unknown or malformed throws a message
 * naming the option and what it accepts.
 */
export function parseOptions(raw: readonly { key: string; value: string }[], cwd: string = process.cwd()): Options {
  const options: Options = { templates: undefined, prefix: "", suffix: "", runtimeImport: "ttrpc-es" };
  const given = new Set<string>();
  for (const { key, value } of raw) {
    if (given.has(key)) {
      throw new Error(`option ${key} is given twice`);
    }
    given.add(key);
    switch (key) {
      case "templates": {
        if (value === "") {
          throw new Error(`option templates needs a folder: ${optionHelp.templates}`);
        }
        const dir = resolve(cwd, value);
        if (!isDirectory(dir)) {
          throw new Error(`option templates: ${dir} is not a folder; expected ${optionHelp.templates}`);
        }
        options.templates = dir;
        break;
      }
      case "prefix":
        if (!/^([A-Za-z_$][A-Za-z0-9_$]*)?$/.test(value)) {
          throw new Error(`option prefix: "${value}" cannot start an identifier; expected ${optionHelp.prefix}`);
        }
        options.prefix = value;
        break;
      case "suffix":
        if (!/^[A-Za-z0-9_$]*$/.test(value)) {
          throw new Error(
            `option suffix: "${value}" is not made of identifier characters; expected ${optionHelp.suffix}`,
          );
        }
        options.suffix = value;
        break;
      case "runtime_import":
        if (value === "" || /[\s"'`\\]/.test(value)) {
          throw new Error(
            `option runtime_import: "${value}" is not a module specifier; expected ${optionHelp.runtime_import}`,
          );
        }
        options.runtimeImport = value;
        break;
      default:
        throw new Error(
          `unknown option "${key}"; protoc-gen-ttrpc-es accepts ${Object.values(optionHelp).join(", ")}, ` +
            `and the standard ${standardOptions}`,
        );
    }
  }
  return options;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
