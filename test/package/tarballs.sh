# Sourced by test/package/pack-and-use.sh and test/docs/run-doc-blocks.sh.
# package_tarballs DIR PACKED: both packages as published. With PACKED (a folder
# where CI packed them once) those are used; else they are packed into DIR.
# Sets runtime_tgz and plugin_tgz to the two tarballs' paths.
package_tarballs() {
  local dir=$1 packed=${2:-} repo
  repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  if [ -z "$packed" ]; then
    echo "packing" >&2
    mkdir -p "$dir"
    (cd "$repo" && npm pack --silent --pack-destination "$dir" >/dev/null)
    (cd "$repo/plugins/protoc-gen-ttrpc-es" && npm pack --silent --pack-destination "$dir" >/dev/null)
    packed=$dir
  fi
  packed="$(cd "$packed" && pwd)"
  runtime_tgz=$(ls "$packed"/ttrpc-es-[0-9]*.tgz)
  plugin_tgz=$(ls "$packed"/protoc-gen-ttrpc-es-[0-9]*.tgz)
}
