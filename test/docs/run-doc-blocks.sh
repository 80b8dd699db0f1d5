#!/usr/bin/env bash
# Runs every ts and sh block of README.md and docs/*.md (docs/testing.md,
# "Docs that run") in a scratch project outside the repository, with ttrpc-es
# and protoc-gen-ttrpc-es installed from their packed tarballs.
#
#   bash test/docs/run-doc-blocks.sh                  (packs both packages first)
#   DOC_BLOCKS_TARBALLS=DIR bash test/docs/run-doc-blocks.sh   (DIR's tarballs, as .ci/run packs them)
#
# Prints "doc blocks: N ran, M marked"; exits non-zero when a block fails or hangs.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
log() { echo "doc blocks: $*" >&2; }

scratch="$(mktemp -d "${TMPDIR:-/tmp}/ttrpc-es-doc-blocks-XXXXXX")"
trap 'rm -rf "$scratch"' EXIT

# shellcheck source=../package/tarballs.sh
source "$repo/test/package/tarballs.sh"
package_tarballs "$scratch/.tarballs" "${DOC_BLOCKS_TARBALLS:-}"
tarballs=$(dirname "$runtime_tgz")

# The repository's versions of what a user installs beside the packages.
dev_version() {
  node -e 'process.stdout.write(require(process.argv[1]).devDependencies[process.argv[2]])' "$repo/package.json" "$1"
}

project="$scratch/project"
mkdir -p "$project"
cd "$project"
echo '{ "name": "doc-blocks", "private": true, "type": "module" }' >package.json
log "installing the tarballs"
npm install --no-audit --no-fund --loglevel=error \
  "$runtime_tgz" "@bufbuild/protobuf@$(dev_version @bufbuild/protobuf)" \
  "@opentelemetry/api@$(dev_version @opentelemetry/api)" >&2
npm install --no-audit --no-fund --loglevel=error --save-dev "$plugin_tgz" \
  "@bufbuild/protoc-gen-es@$(dev_version @bufbuild/protoc-gen-es)" \
  "@bufbuild/buf@$(dev_version @bufbuild/buf)" \
  "typescript@$(dev_version typescript)" "@types/node@$(dev_version @types/node)" >&2

node "$here/run-doc-blocks.mjs" --tarballs "$tarballs" --scratch "$project"
