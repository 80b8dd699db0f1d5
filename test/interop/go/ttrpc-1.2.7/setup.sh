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

# shellcheck source=../../private-apt.sh
source "$here/../../private-apt.sh"

debs="$build/debs"
root="$build/root"
private_apt_unpacked "$build" sid "${pkgs[@]}"
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
