import { readFileSync } from "node:fs";
import { createEcmaScriptPlugin, type Plugin } from "@bufbuild/protoplugin";
import { generateTs } from "./generate.js";
import { explainOptionError, parseOptions } from "./options.js";
import { loadTemplates, type Templates } from "./templates.js";

const { version } = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
  version: string;
};

// Wrapped below only to complete protoplugin's errors for standard options.
const plugin: Plugin = createEcmaScriptPlugin({
  name: "protoc-gen-ttrpc-es",
  version: `v${version}`,
  parseOptions: (raw) => parseOptions(raw),
  generateTs(schema) {
    // Templates load per run: the folder may come from the options.
    const templates: Templates = loadTemplates(schema.options.templates);
    generateTs(schema, templates);
  },
});

/**
 * protoc-gen-ttrpc-es: for each proto file with services, a `<file>_ttrpc.ts`
 * beside protoc-gen-es's `<file>_pb.ts` with a typed ttrpc client, a server
 * interface and a registration helper per service.
 */
export const protocGenTtrpcEs: Plugin = {
  name: plugin.name,
  version: plugin.version,
  run(request) {
    try {
      return plugin.run(request);
    } catch (e) {
      throw explainOptionError(e);
    }
  },
};
