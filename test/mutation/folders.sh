#!/usr/bin/env bash
# The full mutation run, one folder at a time, each against its own tests:
#   bash test/mutation/folders.sh [runtime|migration|nri]… [-- STRYKER ARGS…]
# (no folder: all three). Each folder keeps its results in
# reports/mutation/incremental-FOLDER.json. Stryker saves what it has tested
# there when it is interrupted (Ctrl-C, SIGTERM), and the same command goes on
# from where it stopped, so a run that takes longer than one sitting still
# ends as one run's report. A folder scored against only its own tests may
# score lower than against the whole suite, never higher. See docs/testing.md,
# "Full runs".
set -euo pipefail
cd "$(dirname "$0")/../.."

folders=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do folders+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
[ ${#folders[@]} -eq 0 ] && folders=(runtime migration nri)

mkdir -p reports/mutation
failed=0
for folder in "${folders[@]}"; do
  case "$folder" in
    runtime)
      mutate='src/*.ts,!src/index.ts'
      tests='test/runtime/**/*.test.ts,test/hostile/**/*.test.ts,test/peer-credentials/**/*.test.ts,test/hybrid-vsock/**/*.test.ts'
      ;;
    migration)
      mutate='src/migration/**/*.ts,!src/migration/index.ts,!src/migration/*/index.ts'
      tests='test/migration/**/*.test.ts'
      ;;
    nri)
      mutate='src/nri/**/*.ts,!src/nri/index.ts'
      tests='test/nri/**/*.test.ts'
      ;;
    *)
      echo "unknown folder $folder (runtime, migration or nri)" >&2
      exit 2
      ;;
  esac
  echo "mutation: $folder ($mutate) against $tests"
  status=0
  MUTATION_TESTS="$tests" bash test/mutation/stryker.sh run --mutate "$mutate" \
    --incremental --incrementalFile "reports/mutation/incremental-$folder.json" "$@" || status=$?
  # Interrupted: its results are saved; the next folders wait for the next run.
  [ ! -f reports/mutation/mutation.json ] && exit "$((status == 0 ? 1 : status))"
  cp reports/mutation/mutation.json "reports/mutation/mutation-$folder.json"
  [ "$status" -ne 0 ] && failed=1
done
exit "$failed"
