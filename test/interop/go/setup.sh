#!/usr/bin/env bash
# Builds the Go ttrpc peers of the interop suite from Debian packages only:
#   .build/bin/ttrpc-peer      Go ttrpc 1.2.4 (trixie), unary + streaming
#   .build/bin/ttrpc-peer-old  Go ttrpc 1.1.1 and its deps, all Debian 12's own; unary only
#   .build/bin/typeurl-peer    containerd typeurl 2.x
# Debian 12 has neither Go >= 1.21 nor ttrpc with streaming, so the toolchain comes
# from bookworm-backports and the Go sources from trixie, fetched through a private apt
# configuration under .build/apt (the machine's /etc/apt is only read, for the mirror).
# Idempotent: downloads and builds are skipped when their outputs exist and their
# inputs did not change. Any failure (e.g. the archive cannot be reached) exits non-zero.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
build="$here/.build"
proto_dir="$repo/test/proto"
proto_file="ttrpces/interop/v1/interop.proto"

log() { echo "go-setup: $*" >&2; }
die() {
  echo "go-setup: ERROR: $*" >&2
  exit 1
}

# Packages (name/suite). Changing this list invalidates the download stamp.
toolchain_pkgs=(golang-1.23-go/bookworm-backports golang-1.23-src/bookworm-backports)
source_pkgs=(
  golang-github-containerd-ttrpc-dev/trixie
  golang-google-grpc-dev/trixie
  golang-google-genproto-dev/trixie
  golang-google-protobuf-dev/trixie
  golang-github-sirupsen-logrus-dev/trixie
  golang-golang-x-sys-dev/trixie
  golang-github-containerd-typeurl-dev/trixie
  golang-github-gogo-protobuf-dev/trixie
)
# Debian 12's own ttrpc 1.1.1 with its own dependencies: it marshals with gogo/protobuf,
# which cannot handle messages generated for google.golang.org/protobuf, so the old peer
# is built on the whole Debian 12 stack (first alternatives of each Depends).
old_pkgs=(
  golang-github-containerd-ttrpc-dev=1.1.1-1
  golang-github-gogo-protobuf-dev
  golang-google-genproto-dev
  golang-google-grpc-dev
  golang-github-golang-protobuf-1-3-dev
  golang-github-sirupsen-logrus-dev
  golang-golang-x-sys-dev
  golang-github-pkg-errors-dev
)

mkdir -p "$build"
# Test workers may run this concurrently; one at a time shares the work.
exec 9>"$build/.lock"
flock 9

# --- protoc -----------------------------------------------------------------------
if ! command -v protoc >/dev/null; then
  log "installing protobuf-compiler"
  [[ $(id -u) == 0 ]] || die "protoc is missing and installing it needs root"
  apt_log="$build/apt-install.log"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends protobuf-compiler; } \
    >"$apt_log" 2>&1 || {
    tail -n 20 "$apt_log" >&2
    die "installing protobuf-compiler failed: is the Debian archive reachable?"
  }
fi

# --- downloads --------------------------------------------------------------------
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
download_stamp="$debs/.stamp"
download_key=$(printf '%s\n' "${toolchain_pkgs[@]}" "${source_pkgs[@]}" "${old_pkgs[@]}" | sha256sum | cut -d' ' -f1)

if [[ $(cat "$download_stamp" 2>/dev/null) != "$download_key" ]]; then
  m=$(mirror)
  apt_dir="$build/apt"
  rm -rf "$apt_dir" "$debs"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$debs/new" "$debs/old"
  printf 'deb %s bookworm-backports main\ndeb %s trixie main\n' "$m" "$m" >"$apt_dir/sources.list"
  # As root, apt would drop to the _apt user, who cannot write into this tree.
  sandbox=()
  [[ $(id -u) == 0 ]] && sandbox=(-o APT::Sandbox::User=root)
  apt_private=("${sandbox[@]}" -o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache")
  log "fetching bookworm-backports and trixie package lists (private apt config)"
  apt-get "${apt_private[@]}" -qq --error-on=any update >&2 ||
    die "apt-get update on bookworm-backports/trixie failed: is the Debian archive reachable?"
  log "downloading ${toolchain_pkgs[*]} ${source_pkgs[*]}"
  (cd "$debs/new" && apt-get "${apt_private[@]}" -qq download "${toolchain_pkgs[@]}" "${source_pkgs[@]}" >&2) ||
    die "downloading the Go toolchain and trixie sources failed"
  # Debian 12's own packages come through the machine's own apt configuration.
  log "downloading ${old_pkgs[*]} (bookworm)"
  apt-get "${sandbox[@]}" -qq --error-on=any update >&2 || die "apt-get update failed: is the Debian archive reachable?"
  (cd "$debs/old" && apt-get "${sandbox[@]}" -qq download "${old_pkgs[@]}" >&2) ||
    die "downloading Debian 12's ttrpc 1.1.1 and its dependencies failed"
  rm -rf "$build/root" "$build/root-old" "$build/toolchain"
  echo "$download_key" >"$download_stamp"
fi

# --- unpack -----------------------------------------------------------------------
unpack() { # dir debs...
  local dir=$1
  shift
  [[ -f $dir/.unpacked ]] && return
  log "unpacking into ${dir#"$here/"}"
  rm -rf "$dir" && mkdir -p "$dir"
  for deb in "$@"; do dpkg-deb -x "$deb" "$dir"; done
  touch "$dir/.unpacked"
}
unpack "$build/toolchain" "$debs"/new/golang-1.23-*.deb
unpack "$build/root" $(ls "$debs"/new/*.deb | grep -v '/golang-1\.23-')
unpack "$build/root-old" "$debs"/old/*.deb

goroot="$build/toolchain/usr/lib/go-1.23"
go="$goroot/bin/go"
[[ -x $go ]] || die "Go toolchain missing at $goroot"

# --- build ------------------------------------------------------------------------
# GOPATH mode: every import resolves from the unpacked Debian sources, nothing is fetched.
export GO111MODULE=off GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS= GOENV=off
export GOCACHE="$build/gocache"
new_src="$build/root/usr/share/gocode"
old_src="$build/root-old/usr/share/gocode"
bin="$build/bin"

# Our packages live in private GOPATH roots under the import path "ttrpces/interop/...":
# the peer sources are linked in; the generated code is written there.
gp="$build/gopath"
gp_old="$build/gopath-old"
link() { mkdir -p "$(dirname "$2")" && ln -sfn "$1" "$2"; }
for d in peer peerkit typeurl; do link "$here/$d" "$gp/src/ttrpces/interop/$d"; done
for d in peer-old peerkit; do link "$here/$d" "$gp_old/src/ttrpces/interop/$d"; done

inputs() {
  echo "$download_key"
  cat "$here/setup.sh" "$proto_dir/$proto_file"
  find "$here/peer" "$here/peer-old" "$here/peerkit" "$here/typeurl" -name '*.go' -print0 | sort -z | xargs -0 cat
}
build_key=$(inputs | sha256sum | cut -d' ' -f1)
outputs=("$bin/ttrpc-peer" "$bin/ttrpc-peer-old" "$bin/typeurl-peer")
up_to_date=1
[[ $(cat "$bin/.stamp" 2>/dev/null) == "$build_key" ]] || up_to_date=0
for f in "${outputs[@]}"; do [[ -x $f ]] || up_to_date=0; done
if [[ $up_to_date == 1 ]]; then
  log "up to date: ${outputs[*]}"
  exit 0
fi

mkdir -p "$bin"
log "building protoc-gen-go, protoc-gen-go-ttrpc and protoc-gen-gogo (Go $("$go" env GOVERSION))"
GOPATH="$new_src" "$go" build -o "$build/tools/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go
GOPATH="$new_src" "$go" build -o "$build/tools/protoc-gen-go-ttrpc" github.com/containerd/ttrpc/cmd/protoc-gen-go-ttrpc
GOPATH="$old_src" "$go" build -o "$build/tools/protoc-gen-gogo" github.com/gogo/protobuf/protoc-gen-gogo

log "generating Go code for $proto_file"
rm -rf "$gp/src/ttrpces/interop/v1" "$gp_old/src/ttrpces/interop/v1"
protoc -I "$proto_dir" \
  --plugin=protoc-gen-go="$build/tools/protoc-gen-go" --go_out="$gp/src" \
  --plugin=protoc-gen-go-ttrpc="$build/tools/protoc-gen-go-ttrpc" --go-ttrpc_out="$gp/src" \
  "$proto_dir/$proto_file"
# gogo messages, as peers of the ttrpc 1.1 era (containerd 1.6 shims) were built.
protoc -I "$proto_dir" \
  --plugin=protoc-gen-gogo="$build/tools/protoc-gen-gogo" --gogo_out="$gp_old/src" \
  "$proto_dir/$proto_file"

log "building ttrpc-peer (ttrpc 1.2.4), typeurl-peer, ttrpc-peer-old (ttrpc 1.1.1)"
GOPATH="$gp:$new_src" "$go" build -o "$bin/ttrpc-peer" ttrpces/interop/peer
GOPATH="$gp:$new_src" "$go" build -o "$bin/typeurl-peer" ttrpces/interop/typeurl
GOPATH="$gp_old:$old_src" "$go" build -tags ttrpc_old -o "$bin/ttrpc-peer-old" ttrpces/interop/peer-old
echo "$build_key" >"$bin/.stamp"
log "built ${outputs[*]}"
