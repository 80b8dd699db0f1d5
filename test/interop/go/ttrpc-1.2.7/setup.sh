#!/usr/bin/env bash
# Builds the Go peer of the interop suite (test/interop/go/peer, unchanged) a second time,
# on Go ttrpc 1.2.7 from Debian sid (golang-github-containerd-ttrpc-dev and the
# github.com/containerd/log it now imports):
#   .build/bin/ttrpc-peer-1.2.7
# The toolchain, the generated Interop code and every other source come from
# test/interop/go/setup.sh, which this runs first; in GOPATH mode the sid sources are
# listed before trixie's, so they win for the packages they hold. sid is reached through
# a private apt configuration under .build/apt (the machine's /etc/apt is only read, for
# the mirror). Idempotent; any failure exits non-zero.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
go_here="$here/.."
go_build="$go_here/.build"
build="$here/.build"

log() { echo "go-1.2.7-setup: $*" >&2; }
die() {
  echo "go-1.2.7-setup: ERROR: $*" >&2
  exit 1
}

bash "$go_here/setup.sh" || die "test/interop/go/setup.sh failed (Go toolchain, trixie sources, generated code)"

pkgs=(golang-github-containerd-ttrpc-dev/sid golang-github-containerd-log-dev/sid)

mkdir -p "$build"
exec 9>"$build/.lock"
flock 9

mirror() {
  local uri
  uri=$(grep -h -m1 '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 | awk '{print $2}' || true)
  if [[ -z $uri && -f /etc/apt/sources.list ]]; then
    uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)
  fi
  [[ -n $uri ]] || die "no Debian mirror found in the apt sources"
  echo "$uri"
}

debs="$build/debs"
root="$build/root"
key=$(printf '%s\n' "${pkgs[@]}" | sha256sum | cut -d' ' -f1)
if [[ $(cat "$debs/.stamp" 2>/dev/null) != "$key" ]]; then
  apt_dir="$build/apt"
  rm -rf "$apt_dir" "$debs" "$root"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$debs"
  printf 'deb %s sid main\n' "$(mirror)" >"$apt_dir/sources.list"
  sandbox=()
  [[ $(id -u) == 0 ]] && sandbox=(-o APT::Sandbox::User=root)
  apt_private=("${sandbox[@]}" -o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache")
  log "fetching the sid package lists (private apt config)"
  apt-get "${apt_private[@]}" -qq --error-on=any update >&2 ||
    die "apt-get update on sid failed: is the Debian archive reachable?"
  log "downloading ${pkgs[*]}"
  (cd "$debs" && apt-get "${apt_private[@]}" -qq download "${pkgs[@]}" >&2) || die "downloading from sid failed"
  echo "$key" >"$debs/.stamp"
fi
if [[ ! -f $root/.unpacked ]]; then
  rm -rf "$root" && mkdir -p "$root"
  for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$root"; done
  touch "$root/.unpacked"
fi
version=$(dpkg-deb -f "$debs"/golang-github-containerd-ttrpc-dev_*.deb Version)
[[ $version == 1.2.7-* ]] || die "sid has ttrpc $version, not 1.2.7: update this script and its tests"

go="$go_build/toolchain/usr/lib/go-1.23/bin/go"
[[ -x $go ]] || die "Go toolchain missing at $go"
export GO111MODULE=off GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS= GOENV=off
export GOCACHE="$go_build/gocache"
bin="$build/bin"
build_key=$( (echo "$key" "$version"; cat "$here/setup.sh" "$go_build/bin/.stamp") | sha256sum | cut -d' ' -f1)
if [[ $(cat "$bin/.stamp" 2>/dev/null) == "$build_key" && -x $bin/ttrpc-peer-1.2.7 ]]; then
  log "up to date"
  exit 0
fi
mkdir -p "$bin"
log "building ttrpc-peer-1.2.7 (ttrpc $version)"
GOPATH="$go_build/gopath:$root/usr/share/gocode:$go_build/root/usr/share/gocode" \
  "$go" build -o "$bin/ttrpc-peer-1.2.7" ttrpces/interop/peer
echo "$build_key" >"$bin/.stamp"
log "built $bin/ttrpc-peer-1.2.7"
