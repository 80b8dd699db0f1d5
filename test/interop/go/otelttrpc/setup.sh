#!/usr/bin/env bash
# Builds the otelttrpc peer of the interop suite: Go ttrpc 1.2.7 with the real
# github.com/containerd/otelttrpc 0.1.0 interceptors and the OpenTelemetry Go SDK 1.46,
# all from Debian sid:
#   .build/bin/otelttrpc-peer
# OpenTelemetry 1.46 needs Go >= 1.25, so this peer builds with sid's Go 1.27
# (golang-1.27-go, unpacked, never installed). ttrpc 1.2.7, containerd/log and the
# generated Interop code come from test/interop/go/ttrpc-1.2.7/setup.sh (run first) and
# test/interop/go/setup.sh. Idempotent; any failure exits non-zero.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
go_build="$here/../.build"
sid_build="$here/../ttrpc-1.2.7/.build"
build="$here/.build"

log() { echo "otelttrpc-setup: $*" >&2; }
die() {
  echo "otelttrpc-setup: ERROR: $*" >&2
  exit 1
}

bash "$here/../ttrpc-1.2.7/setup.sh" || die "test/interop/go/ttrpc-1.2.7/setup.sh failed"

# What the peer imports beyond ttrpc (go build in GOPATH mode, until nothing was missing).
pkgs=(
  golang-1.27-go golang-1.27-src
  golang-github-containerd-otelttrpc-dev golang-opentelemetry-otel-dev golang-github-cespare-xxhash-v2-dev
  golang-github-go-logr-logr-dev golang-github-go-logr-stdr-dev golang-github-google-uuid-dev
)

mkdir -p "$build"
exec 9>"$build/.lock"
flock 9

# shellcheck source=../../private-apt.sh
source "$here/../../private-apt.sh"
log "sid packages: ${pkgs[*]}"
private_apt_unpacked "$build" sid "${pkgs[@]}"
root="$build/root"
version=$(dpkg-deb -f "$build"/debs/golang-github-containerd-otelttrpc-dev_*.deb Version)
[[ $version == 0.1.0-* ]] || die "sid has otelttrpc $version, not 0.1.0: update this script and its tests"

go="$root/usr/lib/go-1.27/bin/go"
[[ -x $go ]] || die "Go 1.27 toolchain missing at $go"
export GO111MODULE=off GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS= GOENV=off
export GOCACHE="$build/gocache"
gp="$build/gopath"
mkdir -p "$gp/src/ttrpces/interop"
ln -sfn "$here" "$gp/src/ttrpces/interop/otelttrpc"
bin="$build/bin"
build_key=$( (echo "$key"; cat "$here/setup.sh" "$here"/*.go "$sid_build/bin/.stamp") | sha256sum | cut -d' ' -f1)
if [[ $(cat "$bin/.stamp" 2>/dev/null) == "$build_key" && -x $bin/otelttrpc-peer ]]; then
  log "up to date"
  exit 0
fi
mkdir -p "$bin"
log "building otelttrpc-peer (otelttrpc $version, $("$go" env GOVERSION))"
GOPATH="$gp:$root/usr/share/gocode:$sid_build/root/usr/share/gocode:$go_build/gopath:$go_build/root/usr/share/gocode" \
  "$go" build -o "$bin/otelttrpc-peer" ttrpces/interop/otelttrpc
echo "$build_key" >"$bin/.stamp"
log "built $bin/otelttrpc-peer"
