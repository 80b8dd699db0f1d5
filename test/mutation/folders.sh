#!/usr/bin/env bash
# The full mutation run, one part at a time, each against its own tests:
#   bash test/mutation/folders.sh [runtime|migration|qemu|nri]… [-- STRYKER ARGS…]
# (no part named: all four), then the score per folder over every part's
# report (test/mutation/scores.mjs). `qemu` is the migration folder's QEMU
# backend, against its unit tests (a scripted QMP peer, no VM: the VM suite
# takes 100 s a run, too long per mutant); `migration` is the rest of
# src/migration.
#
# Each part keeps its results in reports/mutation/incremental-PART.json.
# Stryker saves what it has tested there when it is interrupted (Ctrl-C,
# SIGTERM), and the same command goes on from where it stopped, so a run longer
# than one sitting still ends as one run's report. A part scored against its
# own tests only may score lower than against the whole suite, never higher.
# See docs/testing.md, "Full runs".
set -euo pipefail
cd "$(dirname "$0")/../.."

parts=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do parts+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
[ ${#parts[@]} -eq 0 ] && parts=(runtime migration qemu nri)

mkdir -p reports/mutation
for part in "${parts[@]}"; do
  case "$part" in
    runtime)
      mutate='src/*.ts,!src/index.ts'
      tests='test/runtime/**/*.test.ts,test/hostile/**/*.test.ts,test/peer-credentials/**/*.test.ts,test/hybrid-vsock/**/*.test.ts'
      ;;
    migration)
      mutate='src/migration/**/*.ts,!src/migration/index.ts,!src/migration/*/index.ts,!src/migration/qemu/**'
      tests='test/migration/*.test.ts'
      ;;
    qemu)
      mutate='src/migration/qemu/**/*.ts,!src/migration/qemu/index.ts'
      tests='test/migration/qemu/**/*.test.ts'
      ;;
    nri)
      mutate='src/nri/**/*.ts,!src/nri/index.ts'
      tests='test/nri/**/*.test.ts'
      ;;
    *)
      echo "unknown part $part (runtime, migration, qemu or nri)" >&2
      exit 2
      ;;
  esac
  echo "mutation: $part ($mutate) against $tests"
  status=0
  MUTATION_TESTS="$tests" bash test/mutation/stryker.sh run --mutate "$mutate" \
    --incremental --incrementalFile "reports/mutation/incremental-$part.json" "$@" || status=$?
  # No report: interrupted, its results saved; the parts after it wait for the next run.
  [ -f reports/mutation/mutation.json ] || exit "$((status == 0 ? 1 : status))"
  mv reports/mutation/mutation.json "reports/mutation/mutation-$part.json"
done

# A part's own thresholds mean little (the QEMU backend is half a folder):
# the folders are scored over every part's latest report.
shopt -s nullglob
node test/mutation/scores.mjs reports/mutation/mutation-*.json
