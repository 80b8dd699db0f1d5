// Every set of the real-world proto corpus (containerd 1.6, 1.7 and 2.1, ttrpc
// and NRI as Debian ships them; test/corpus/setup.sh) generates with buf and
// with protoc, protoc-gen-es plus our plugin as a real subprocess, and the
// output type-checks under the project's tsconfig.
import { execFileSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { corpus, ensureCorpus } from "../corpus/corpus.js";
import { addToProject, buf, repo, typeErrors } from "./harness.js";

// Include roots of each set, below the corpus directory.
// gogoOptions: the files carry gogo's custom field options, which buf and protoc
// serialize into the embedded descriptors in a different order (same bytes,
// reordered), so those descriptors are compared apart from the generated code.
const sets: { name: string; roots: string[]; gogoOptions?: boolean }[] = [
  { name: "containerd-1.6", roots: ["containerd-1.6/gocode", "containerd-1.6/gogo", "googleapis"], gogoOptions: true },
  { name: "containerd-1.7", roots: ["containerd-1.7/gocode", "googleapis"] },
  { name: "containerd-2.1", roots: ["containerd-2.1/gocode", "googleapis"] },
  // Debian's ttrpc ships only message protos (request.proto, the wire envelope): NRI brings the services.
  { name: "ttrpc-nri", roots: ["ttrpc", "nri"] },
];

const protocGenEs = join(repo, "node_modules/@bufbuild/protoc-gen-es/bin/protoc-gen-es");
const protocGenTtrpcEs = join(repo, "plugins/protoc-gen-ttrpc-es/bin/protoc-gen-ttrpc-es.js");
const opt = "target=ts,import_extension=js";

/** Files below `dir` (relative paths, sorted), only those ending in `ext` when given. */
function listFiles(dir: string, ext = ""): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name.endsWith(ext)) out.push(relative(dir, join(d, e.name)));
    }
  };
  walk(dir);
  return out.sort();
}

const protoFiles = (root: string) => listFiles(root, ".proto");

function readTree(dir: string): Map<string, string> {
  return new Map(listFiles(dir).map((name) => [name, readFileSync(join(dir, name), "utf8")]));
}

let work: string;
let wkt: string;

beforeAll(async () => {
  await ensureCorpus();
  // The bin runs the compiled plugin.
  execFileSync(join(repo, "node_modules/.bin/tsc"), ["-p", join(repo, "plugins/protoc-gen-ttrpc-es/tsconfig.json")]);
  work = mkdtempSync(join(tmpdir(), "ttrpc-es-corpus-"));
  // Debian's protoc finds the well-known types only with libprotobuf-dev
  // installed; hand them over as descriptors (from buf's built-in copies) so
  // protoc still parses every corpus file itself.
  mkdirSync(join(work, "wkt"));
  writeFileSync(
    join(work, "wkt/wkt.proto"),
    'syntax = "proto3";\n' +
      [
        "any",
        "api",
        "descriptor",
        "duration",
        "empty",
        "field_mask",
        "source_context",
        "struct",
        "timestamp",
        "type",
        "wrappers",
      ]
        .map((n) => `import "google/protobuf/${n}.proto";\n`)
        .join(""),
  );
  wkt = join(work, "wkt.binpb");
  execFileSync(buf, ["build", join(work, "wkt"), "--as-file-descriptor-set", "-o", wkt], { stdio: "pipe" });
}, 300_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The generated files with each embedded descriptor's bytes sorted: equal when only their order differs. */
function withSortedDescriptors(files: Map<string, string>): Map<string, string> {
  const sorted = (b64: string) => [...Buffer.from(b64, "base64")].sort((a, b) => a - b).join(",");
  return new Map(
    [...files].map(([name, text]) => [
      name,
      text.replace(/fileDesc\("([^"]*)"/g, (_, b64: string) => `fileDesc(${sorted(b64)}`),
    ]),
  );
}

describe.each(sets)("corpus set $name", ({ name, roots, gogoOptions }) => {
  const rootDirs = roots.map((r) => join(corpus, r));
  const inputs = () => rootDirs.map((r) => protoFiles(r));

  /** buf: a workspace of one module per include root, each a tree of symlinks to the corpus files. */
  function generateWithBuf(): string {
    const ws = join(work, `${name}-buf`);
    const out = join(ws, "out");
    rootDirs.forEach((root, i) => {
      for (const file of protoFiles(root)) {
        mkdirSync(dirname(join(ws, `m${i}`, file)), { recursive: true });
        symlinkSync(join(root, file), join(ws, `m${i}`, file));
      }
    });
    writeFileSync(
      join(ws, "buf.yaml"),
      `version: v2\nmodules:\n${rootDirs.map((_, i) => `  - path: m${i}\n`).join("")}`,
    );
    const template = {
      version: "v2",
      plugins: [
        { local: ["node", protocGenEs], out, opt, strategy: "all" },
        { local: ["node", protocGenTtrpcEs], out, opt, strategy: "all" },
      ],
    };
    execFileSync(buf, ["generate", "--template", JSON.stringify(template)], { cwd: ws, stdio: "pipe" });
    return out;
  }

  function generateWithProtoc(): string {
    const out = join(work, `${name}-protoc`);
    mkdirSync(out);
    const args = [
      `--descriptor_set_in=${wkt}`,
      ...rootDirs.map((r) => `-I${r}`),
      `--plugin=protoc-gen-es=${protocGenEs}`,
      `--es_out=${out}`,
      `--es_opt=${opt}`,
      `--plugin=protoc-gen-ttrpc-es=${protocGenTtrpcEs}`,
      `--ttrpc-es_out=${out}`,
      `--ttrpc-es_opt=${opt}`,
      ...inputs().flat(),
    ];
    try {
      execFileSync("protoc", args, { stdio: "pipe" });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") {
        throw new Error("protoc is not installed: apt-get install protobuf-compiler (.ci/run does)");
      }
      throw e;
    }
    return out;
  }

  const results = new Map<string, Map<string, string>>();

  it.each([
    ["buf", generateWithBuf],
    ["protoc", generateWithProtoc],
  ])(
    "generates with %s: a _ttrpc.ts per file with services",
    (tool, run) => {
      expect(existsSync(corpus), `corpus not found at ${corpus}`).toBe(true);
      const files = readTree(run());
      results.set(tool, files);
      const withServices = inputs()
        .flatMap((list, i) => list.filter((f) => /^service\s/m.test(readFileSync(join(rootDirs[i]!, f), "utf8"))))
        .map((f) => f.replace(/\.proto$/, "_ttrpc.ts"))
        .sort();
      expect(withServices.length).toBeGreaterThan(0);
      expect([...files.keys()].filter((f) => f.endsWith("_ttrpc.ts"))).toEqual(withServices);
      expect([...files.keys()].filter((f) => f.endsWith("_pb.ts"))).toHaveLength(inputs().flat().length);
    },
    120_000,
  );

  it("buf and protoc emit the same files, and they type-check", () => {
    const fromBuf = results.get("buf");
    const fromProtoc = results.get("protoc");
    expect(fromBuf && fromProtoc).toBeTruthy();
    if (gogoOptions) expect(withSortedDescriptors(fromProtoc!)).toEqual(withSortedDescriptors(fromBuf!));
    else expect(fromProtoc).toEqual(fromBuf);
    const { project, sources } = addToProject(fromBuf!);
    expect(typeErrors(project, sources.values())).toEqual([]);
  }, 120_000);
});
