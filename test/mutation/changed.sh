#!/usr/bin/env bash
# Mutation testing of the lines a change touched (the CI mode of `npm run
# mutation`): the changed line ranges of src/*.ts, src/migration/** and
# src/nri/** since the merge base with ${MUTATION_BASE:-main} (else the previous
# commit), one Stryker process, then the per-folder thresholds of
# test/mutation/scores.mjs on those mutants. Nothing in scope changed: passes.
set -euo pipefail
cd "$(dirname "$0")/../.."
mutate=$(node test/mutation/changed-lines.mjs)
if [ -z "$mutate" ]; then
  echo "mutation: no line of src/*.ts, src/migration/** or src/nri/** changed"
  exit 0
fi
echo "mutation: $mutate"
bash test/mutation/stryker.sh run --mutate "$mutate" --concurrency 1 "$@"
