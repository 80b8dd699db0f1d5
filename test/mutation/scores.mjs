// Prints the mutation score per folder from Stryker's JSON report and exits 1
// when a folder with mutants is below its threshold:
//   node test/mutation/scores.mjs [reports/mutation/mutation.json…]
// Score = detected (killed or timed out) / (detected + survived + no coverage),
// as Stryker counts it; mutants that do not compile are not counted. The
// timeouts are also counted apart: a test that hangs is a detection, but load
// on the machine can make a slow pass look like one.
import { readFileSync } from "node:fs";

/** Each folder of the mutated code, and the score it must reach (issue 30). */
const FOLDERS = [
  { name: "runtime (src/*.ts)", match: (f) => /^src\/[^/]+\.ts$/.test(f), threshold: 80 },
  { name: "migration (src/migration/**)", match: (f) => f.startsWith("src/migration/"), threshold: 80 },
  { name: "nri (src/nri/**)", match: (f) => f.startsWith("src/nri/"), threshold: 70 },
];
const DETECTED = new Set(["Killed", "Timeout"]);
const UNDETECTED = new Set(["Survived", "NoCoverage"]);

// Several reports (one per part of a folder run) are scored as one.
const paths = process.argv.length > 2 ? process.argv.slice(2) : ["reports/mutation/mutation.json"];
const report = { files: {} };
for (const path of paths) Object.assign(report.files, JSON.parse(readFileSync(path, "utf8")).files);
let failed = false;
for (const folder of FOLDERS) {
  let detected = 0;
  let undetected = 0;
  let timedOut = 0;
  for (const [file, { mutants }] of Object.entries(report.files)) {
    if (!folder.match(file.replaceAll("\\", "/"))) continue;
    for (const m of mutants) {
      if (DETECTED.has(m.status)) detected++;
      else if (UNDETECTED.has(m.status)) undetected++;
      if (m.status === "Timeout") timedOut++;
    }
  }
  const total = detected + undetected;
  if (total === 0) {
    console.log(`${folder.name}: no mutants`);
    continue;
  }
  const score = (100 * detected) / total;
  const ok = score >= folder.threshold;
  failed ||= !ok;
  console.log(
    `${folder.name}: ${score.toFixed(2)} % (${detected} of ${total} detected, ${timedOut} of them by a timeout; ` +
      `threshold ${folder.threshold} %)${ok ? "" : "  BELOW"}`,
  );
}
process.exit(failed ? 1 : 0);
