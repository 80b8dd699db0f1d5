// Runs the code blocks of README.md and docs/*.md (not docs/api/) in a
// scratch project outside the repository, where ttrpc-es and
// protoc-gen-ttrpc-es are installed from their packed tarballs.
//
//   node test/docs/run-doc-blocks.mjs --tarballs DIR --scratch DIR
//   (test/docs/run-doc-blocks.sh makes both folders; use it)
//   DOC_BLOCKS_VERBOSE=1: print every block's output
//
// Markers, HTML comments on the lines right before a fence (docs/testing.md):
//   <!-- doc-block: skip reason="…" -->   the block is not run; the reason is printed
//   <!-- doc-block: continues -->         a ts block appended to the ts block before it
//   <!-- doc-block: file path="…" -->     any block, written to that path of the scratch project
// Order: file blocks are written, sh blocks run one by one, all ts blocks are
// type-checked in one tsc run (strict, NodeNext), then each runs to completion.
// Prints "doc blocks: N ran, M marked"; exits 1 when one fails or hangs.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";

const BLOCK_TIMEOUT_MS = 30_000;
// DOC_BLOCKS_VERBOSE=1 prints what every block printed, not only a failing one's.
const verbose = process.env.DOC_BLOCKS_VERBOSE === "1";
const repo = resolve(dirname(new URL(import.meta.url).pathname), "../..");
const { values: args } = parseArgs({ options: { tarballs: { type: "string" }, scratch: { type: "string" } } });
if (!args.tarballs || !args.scratch) {
  console.error("usage: run-doc-blocks.mjs --tarballs DIR --scratch DIR");
  process.exit(2);
}
const scratch = resolve(args.scratch);
if (!relative(repo, scratch).startsWith("..")) {
  console.error(`doc blocks: scratch dir ${scratch} is inside the repository`);
  process.exit(2);
}

/** The markdown files whose blocks run: README.md and docs/*.md. */
function markdownFiles() {
  const docs = readdirSync(join(repo, "docs"), { withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith(".md"))
    .map((e) => `docs/${e.name}`)
    .sort();
  return ["README.md", ...docs];
}

const MARKER = /^<!--\s*doc-block:\s*(skip|continues|file)\b(.*?)-->\s*$/;
// The fence languages that run, by their spellings.
const LANGS = new Map([
  ["ts", "ts"],
  ["typescript", "ts"],
  ["sh", "sh"],
  ["bash", "sh"],
  ["shell", "sh"],
]);
const FENCE = /^(\s*)(`{3,})\s*([\w-]*)(.*)$/;

/** The markers on the comment lines right above line `at`. */
function markersAbove(lines, at, file) {
  const found = [];
  for (let i = at - 1; i >= 0 && lines[i].trim().startsWith("<!--"); i--) {
    const m = MARKER.exec(lines[i].trim());
    if (m === null && lines[i].includes("doc-block:")) throw new Error(`${file}:${i + 1}: unknown marker`);
    if (m === null) continue;
    const attr = (name) => new RegExp(`${name}="([^"]*)"`).exec(m[2])?.[1];
    if (m[1] === "skip" && !attr("reason")) throw new Error(`${file}:${i + 1}: a skip marker needs reason="…"`);
    found.push({ kind: m[1], reason: attr("reason"), path: attr("path") });
  }
  return found;
}

/** Every fenced block of one file, with its language, first line and markers. */
function blocksOf(file) {
  const lines = readFileSync(join(repo, file), "utf8").split("\n");
  const blocks = [];
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i]);
    if (open === null) continue;
    const [, indent, ticks, lang] = open;
    let end = i + 1;
    while (end < lines.length && !lines[end].startsWith(`${indent}${ticks}`)) end++;
    const body = lines.slice(i + 1, end).map((l) => l.slice(indent.length));
    const where = `${file}:${i + 1}`;
    const markers = markersAbove(lines, i, file);
    blocks.push({ where, lang: LANGS.get(lang) ?? lang, body: `${body.join("\n")}\n`, markers });
    i = end;
  }
  return blocks;
}

function collect() {
  const files = [];
  const sh = [];
  const ts = [];
  const marked = [];
  for (const file of markdownFiles()) {
    for (const block of blocksOf(file)) {
      const marker = (kind) => block.markers.find((m) => m.kind === kind);
      if (marker("file")) files.push({ ...block, path: marker("file").path });
      else if (block.lang !== "ts" && block.lang !== "sh") continue;
      else if (marker("skip")) marked.push({ ...block, reason: marker("skip").reason });
      else if (marker("continues")) {
        const previous = ts.at(-1);
        if (
          block.lang !== "ts" ||
          previous === undefined ||
          !previous.where.startsWith(`${block.where.split(":")[0]}:`)
        ) {
          throw new Error(`${block.where}: "continues" needs a ts block before it in the same file`);
        }
        previous.body += block.body;
        previous.parts.push(block.where);
      } else (block.lang === "ts" ? ts : sh).push({ ...block, parts: [block.where] });
    }
  }
  return { files, sh, ts, marked };
}

/** Runs argv in the scratch project in its own process group; kills the group on timeout or exit. */
function run(argv, where) {
  return new Promise((resolveRun) => {
    // The examples' temporary folders go inside the scratch project, removed with it.
    const env = {
      ...process.env,
      PATH: `${join(scratch, "node_modules/.bin")}:${process.env.PATH}`,
      TMPDIR: join(scratch, "tmp"),
    };
    const child = spawn(argv[0], argv.slice(1), {
      cwd: scratch,
      env,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    let timedOut = false;
    const killGroup = () => {
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {}
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, BLOCK_TIMEOUT_MS);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      killGroup(); // what the block started and left behind
      const ok = code === 0 && !timedOut;
      const why = timedOut ? `did not exit within ${BLOCK_TIMEOUT_MS / 1000} s` : `exit ${code ?? signal}`;
      resolveRun({ ok, where, why, output });
    });
  });
}

const TSCONFIG = {
  compilerOptions: {
    target: "ES2022",
    module: "NodeNext",
    moduleResolution: "NodeNext",
    moduleDetection: "force",
    strict: true,
    types: ["node"],
    outDir: "dist",
    rootDir: "src",
  },
  include: ["src"],
};

function writeScratch(files, ts) {
  const written = new Map();
  for (const f of files) {
    if (written.has(f.path) && written.get(f.path) !== f.body)
      throw new Error(`${f.where}: ${f.path} differs from an earlier file block`);
    written.set(f.path, f.body);
    mkdirSync(dirname(join(scratch, f.path)), { recursive: true });
    writeFileSync(join(scratch, f.path), f.body);
  }
  mkdirSync(join(scratch, "src"), { recursive: true });
  mkdirSync(join(scratch, "tmp"), { recursive: true });
  writeFileSync(join(scratch, "tsconfig.json"), JSON.stringify(TSCONFIG, null, 2));
  ts.forEach((b, i) => {
    b.name = `block-${String(i + 1).padStart(2, "0")}`;
    writeFileSync(join(scratch, "src", `${b.name}.ts`), `// ${b.parts.join(", ")}\n${b.body}`);
  });
}

function report(result) {
  console.log(`${result.ok ? "ok    " : "FAILED"} ${result.where}${result.ok ? "" : `: ${result.why}`}`);
  if (!result.ok || verbose) console.log(result.output.replace(/^/gm, "    "));
  return result.ok;
}

async function main() {
  let blocks;
  try {
    blocks = collect();
  } catch (e) {
    console.error(`doc blocks: ${e.message}`);
    process.exit(2);
  }
  const { files, sh, ts, marked } = blocks;
  writeScratch(files, ts);
  let failed = 0;
  for (const b of sh) if (!report(await run(["bash", "-euo", "pipefail", "-c", b.body], b.where))) failed++;
  const tsc = spawnSync(join(scratch, "node_modules/.bin/tsc"), ["-p", "tsconfig.json"], {
    cwd: scratch,
    encoding: "utf8",
  });
  if (tsc.status !== 0) {
    console.log(`FAILED tsc (strict, NodeNext) of the ts blocks:\n${tsc.stdout}${tsc.stderr}`);
    for (const b of ts) console.log(`  src/${b.name}.ts = ${b.parts.join(", ")}`);
    failed++;
  } else {
    for (const b of ts) if (!report(await run([process.execPath, `dist/${b.name}.js`], b.parts.join(" + ")))) failed++;
  }
  for (const b of marked) console.log(`marked ${b.where}: ${b.reason}`);
  const ran = sh.length + ts.length;
  console.log(`doc blocks: ${ran} ran, ${marked.length} marked${failed > 0 ? `, ${failed} failed` : ""}`);
  process.exit(failed > 0 ? 1 : 0);
}

await main();
