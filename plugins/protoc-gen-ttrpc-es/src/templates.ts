import { existsSync, readdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import Handlebars from "handlebars";

/** The template every file starts from; it pulls in the others as partials. */
export const ENTRY_TEMPLATE = "file";

/**
 * Where the built-in templates are looked up, in order: the plugin package's
 * own `templates/` (filled by `prepack` for publishing), then the repository's
 * top-level `templates/`. Resolved from this module, never from the cwd.
 */
export function builtinTemplateDirs(): string[] {
  const pkg = fileURLToPath(new URL("..", import.meta.url));
  return [join(pkg, "templates"), join(pkg, "..", "..", "templates")];
}

/** What a template helper needs from the file being generated. */
export interface TemplateSink {
  /** Returns text standing for `export <declaration> <name>` in the output. */
  export(declaration: string, name: string): string;
}

/** A template failed to parse or render; the message names the file and line. */
export class TemplateError extends Error {
  constructor(
    readonly file: string,
    readonly line: number | undefined,
    detail: string,
  ) {
    super(`template ${file}${line === undefined ? "" : `:${line}`}: ${detail}`);
    this.name = "TemplateError";
  }
}

/** Loaded and compiled templates, ready to render files. */
export interface Templates {
  /** Template name → the file it was loaded from. */
  readonly files: ReadonlyMap<string, string>;
  render(context: object, sink: TemplateSink): string;
}

/**
 * Loads every `*.hbs` template: from `userDir` first (when given), then from
 * the built-in folders, so a user folder may replace any subset. Templates
 * render with `noEscape` (this is code, not HTML) and `strict` (a missing
 * variable is an error, not an empty string).
 */
export function loadTemplates(
  userDir: string | undefined,
  builtinDirs: readonly string[] = builtinTemplateDirs(),
): Templates {
  const files = new Map<string, string>();
  for (const dir of [...(userDir === undefined ? [] : [userDir]), ...builtinDirs]) {
    if (!existsSync(dir)) {
      continue;
    }
    for (const entry of readdirSync(dir).sort()) {
      if (entry.endsWith(".hbs") && !files.has(basename(entry, ".hbs"))) {
        files.set(basename(entry, ".hbs"), join(dir, entry));
      }
    }
  }
  if (!files.has(ENTRY_TEMPLATE)) {
    throw new Error(
      `template ${ENTRY_TEMPLATE}.hbs not found in ${[userDir, ...builtinDirs].filter(Boolean).join(", ")}`,
    );
  }

  const env = Handlebars.create();
  let sink: TemplateSink | undefined;
  env.registerHelper("export", (declaration: unknown, name: unknown) => {
    if (typeof declaration !== "string" || typeof name !== "string" || sink === undefined) {
      throw new Error('usage: {{export "const" name}}');
    }
    return sink.export(declaration, name);
  });
  env.registerHelper("json", (value: unknown) => JSON.stringify(value));

  const compiled = new Map<string, Handlebars.TemplateDelegate>();
  for (const [name, file] of files) {
    const source = readFileSync(file, "utf8");
    try {
      // Parse now, so a syntax error surfaces even in a partial no file uses.
      env.parse(source);
    } catch (e) {
      throw templateError(file, e);
    }
    const template = env.compile(source, { noEscape: true, strict: true });
    const wrapped: Handlebars.TemplateDelegate = (context, options) => {
      try {
        return template(context, options);
      } catch (e) {
        throw templateError(file, e);
      }
    };
    compiled.set(name, wrapped);
    if (name !== ENTRY_TEMPLATE) {
      env.registerPartial(name, wrapped);
    }
  }
  const entry = compiled.get(ENTRY_TEMPLATE)!;

  return {
    files,
    render(context, s) {
      sink = s;
      try {
        return entry(context);
      } finally {
        sink = undefined;
      }
    },
  };
}

function templateError(file: string, e: unknown): TemplateError {
  if (e instanceof TemplateError) {
    return e; // raised in a partial, already names it
  }
  const err = e instanceof Error ? e : new Error(String(e));
  const located = err as Error & { lineNumber?: unknown };
  let line = typeof located.lineNumber === "number" ? located.lineNumber : undefined;
  // Parse errors carry the line in the text only: "Parse error on line 3:".
  line ??= Number(/on line (\d+)/.exec(err.message)?.[1] ?? Number.NaN) || undefined;
  // Strip Handlebars' own " - line:column" suffix, the prefix says it.
  return new TemplateError(file, line, err.message.replace(/ - \d+:\d+$/, ""));
}
