#!/usr/bin/env bash
# Builds the NRI interop peers from Debian trixie packages only:
#   .build/bin/nri-runtime     a runtime on containerd/nri 0.6.1 pkg/adaptation (what containerd embeds)
#   .build/bin/nri-go-plugin   a plugin on containerd/nri 0.6.1 pkg/stub
#   .build/containerd/usr/bin/containerd   trixie's containerd 1.7.24 (built with NRI 0.6.1), unpacked
# and installs Debian's runc and busybox-static (for the containers of the CRI test).
# The Go toolchain, the trixie apt configuration and the ttrpc/protobuf/grpc sources
# come from test/interop/go/setup.sh, which this runs first. The NRI sources and their
# dependencies are unpacked with dpkg-deb, never installed. Idempotent: downloads and
# builds are skipped when their inputs did not change. Any failure exits non-zero.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
go_here="$here/../go"
go_build="$go_here/.build"
build="$here/.build"

log() { echo "nri-setup: $*" >&2; }
die() {
  echo "nri-setup: ERROR: $*" >&2
  exit 1
}

bash "$go_here/setup.sh" || die "test/interop/go/setup.sh failed (Go toolchain and trixie sources)"

# What pkg/adaptation and pkg/stub import (go list -deps), beyond what go/setup.sh unpacks.
pkgs=(
  golang-github-containerd-nri-dev/trixie
  golang-github-kubernetes-cri-api-dev/trixie
  golang-github-moby-sys-dev/trixie
  golang-github-opencontainers-runtime-tools-dev/trixie
  golang-github-opencontainers-specs-dev/trixie
  golang-k8s-sigs-yaml-dev/trixie
  golang-golang-x-net-dev/trixie
  golang-golang-x-text-dev/trixie
  golang-github-golang-protobuf-1-5-dev/trixie
  containerd/trixie
)

mkdir -p "$build"
exec 9>"$build/.lock"
flock 9

# runc runs the containers of the containerd CRI test; busybox-static is their image's only file.
# shellcheck source=../machine-apt.sh
source "$here/../machine-apt.sh"
if ! dpkg -s runc busybox-static >/dev/null 2>&1; then
  machine_apt_install "$build/apt-install.log" runc busybox-static
fi

debs="$build/debs"
key=$(printf '%s\n' "${pkgs[@]}" | sha256sum | cut -d' ' -f1)
if [[ $(cat "$debs/.stamp" 2>/dev/null) != "$key" ]]; then
  apt_dir="$go_build/apt"
  [[ -f $apt_dir/sources.list ]] || die "no private apt configuration at $apt_dir (go/setup.sh should have made it)"
  sandbox=()
  [[ $(id -u) == 0 ]] && sandbox=(-o APT::Sandbox::User=root)
  apt_private=("${sandbox[@]}" -o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache")
  rm -rf "$debs" "$build/root" "$build/containerd"
  mkdir -p "$debs"
  log "downloading ${pkgs[*]}"
  if ! (cd "$debs" && apt-get "${apt_private[@]}" -qq download "${pkgs[@]}" >&2); then
    log "refreshing the trixie package lists"
    apt-get "${apt_private[@]}" -qq --error-on=any update >&2 || die "apt-get update failed: is the Debian archive reachable?"
    (cd "$debs" && apt-get "${apt_private[@]}" -qq download "${pkgs[@]}" >&2) || die "downloading the NRI packages failed"
  fi
  echo "$key" >"$debs/.stamp"
fi

if [[ ! -f $build/root/.unpacked ]]; then
  log "unpacking the NRI sources"
  rm -rf "$build/root" && mkdir -p "$build/root"
  for deb in "$debs"/golang-*.deb; do dpkg-deb -x "$deb" "$build/root"; done
  touch "$build/root/.unpacked"
fi
if [[ ! -x $build/containerd/usr/bin/containerd ]]; then
  log "unpacking containerd"
  rm -rf "$build/containerd" && mkdir -p "$build/containerd"
  dpkg-deb -x "$debs"/containerd_*.deb "$build/containerd"
fi

go="$go_build/toolchain/usr/lib/go-1.23/bin/go"
[[ -x $go ]] || die "Go toolchain missing at $go"
export GO111MODULE=off GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS= GOENV=off
export GOCACHE="$go_build/gocache"
gp="$build/gopath"
mkdir -p "$gp/src/ttrpces/nri"
for d in runtime plugin; do ln -sfn "$here/$d" "$gp/src/ttrpces/nri/$d"; done
bin="$build/bin"
build_key=$( (echo "$key"; cat "$here/setup.sh" "$here"/runtime/*.go "$here"/plugin/*.go) | sha256sum | cut -d' ' -f1)
if [[ $(cat "$bin/.stamp" 2>/dev/null) == "$build_key" && -x $bin/nri-runtime && -x $bin/nri-go-plugin ]]; then
  log "up to date"
  exit 0
fi
mkdir -p "$bin"
log "building nri-runtime (pkg/adaptation) and nri-go-plugin (pkg/stub), NRI 0.6.1"
export GOPATH="$gp:$build/root/usr/share/gocode:$go_build/root/usr/share/gocode"
"$go" build -o "$bin/nri-runtime" ttrpces/nri/runtime
"$go" build -o "$bin/nri-go-plugin" ttrpces/nri/plugin
echo "$build_key" >"$bin/.stamp"
log "built $bin/nri-runtime $bin/nri-go-plugin"
