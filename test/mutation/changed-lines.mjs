// Prints Stryker's --mutate argument for the lines a change touched: each
// added or changed line range of the files in Stryker's scope, from
// `git diff -U0` between the merge base with BASE (default: main, else the
// previous commit) and the working tree. Prints nothing when no such line
// changed.
//   node test/mutation/changed-lines.mjs [BASE]
import { execFileSync } from "node:child_process";

const git = (...args) => execFileSync("git", args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
const tryGit = (...args) => {
  try {
    return git(...args);
  } catch {
    return undefined;
  }
};

/** The files Stryker mutates (stryker.config.mjs): no re-export index files. */
const inScope = (f) =>
  /^src\/([^/]+|migration\/.+|nri\/.+)\.ts$/.test(f) && !f.endsWith("/index.ts") && f !== "src/index.ts";

const base = process.argv[2] ?? process.env.MUTATION_BASE ?? "main";
let mergeBase = tryGit("merge-base", "HEAD", base);
if (mergeBase === undefined) {
  // A clone without the base (shallow, or a branch never merged from main):
  // say so, and check the last commit's lines rather than none.
  mergeBase = tryGit("rev-parse", "HEAD~1");
  if (mergeBase === undefined) throw new Error(`no merge base with ${base} and no previous commit`);
  process.stderr.write(`mutation: ${base} is not in this clone's history; checking the lines of the last commit\n`);
}
process.stderr.write(`mutation: lines changed since ${mergeBase.slice(0, 12)}\n`);
const diff = git("diff", "-U0", "--no-color", "--diff-filter=AM", mergeBase, "--", "src");

const ranges = [];
let file;
for (const line of diff.split("\n")) {
  const name = /^\+\+\+ b\/(.+)$/.exec(line);
  if (name !== null) file = inScope(name[1]) ? name[1] : undefined;
  const hunk = /^@@ -\S+ \+(\d+)(?:,(\d+))? @@/.exec(line);
  if (hunk === null || file === undefined) continue;
  const start = Number(hunk[1]);
  const count = hunk[2] === undefined ? 1 : Number(hunk[2]);
  if (count > 0) ranges.push(`${file}:${start}-${start + count - 1}`);
}
process.stdout.write(ranges.join(","));
