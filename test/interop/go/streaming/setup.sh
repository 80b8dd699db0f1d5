#!/usr/bin/env bash
# Builds the streaming peer of the interop suite: containerd/ttrpc's own cross-
# implementation test service, ttrpc.integration.streaming.Streaming, on Go ttrpc 1.2.7.
#   .build/bin/streaming-peer     server and client (main.go, server.go here)
#   .build/test.proto             integration/streaming/test.proto, unchanged
#   .build/test.binpb             its FileDescriptorSet (protoc), which the TypeScript
#                                 side loads at test time
# Debian's binary package leaves integration/ out, so the proto and its generated Go code
# come from the source package golang-gogottrpc 1.2.7 (sid): only its upstream tarball is
# fetched, with apt's own helper, from the URI apt prints for it. Everything else comes
# from test/interop/go/ttrpc-1.2.7/setup.sh, which this runs first. Idempotent; any
# failure exits non-zero.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
go_build="$here/../.build"
sid_here="$here/../ttrpc-1.2.7"
build="$here/.build"

log() { echo "streaming-setup: $*" >&2; }
die() {
  echo "streaming-setup: ERROR: $*" >&2
  exit 1
}

bash "$sid_here/setup.sh" || die "test/interop/go/ttrpc-1.2.7/setup.sh failed"

# shellcheck source=../../private-apt.sh
source "$here/../../private-apt.sh"

mkdir -p "$build"
exec 9>"$build/.lock"
flock 9

src_pkg=golang-gogottrpc
version=1.2.7
tarball="$build/src/${src_pkg}_${version}.orig.tar.xz"
if [[ ! -f $tarball ]]; then
  rm -rf "$build/src"
  mkdir -p "$build/src"
  log "fetching the sid source lists (private apt config)"
  private_apt_init "$build/apt" deb-src sid
  # 'URI' name size hash, for each file of the source package; only the tarball is needed.
  line=$(apt-get "${apt_private[@]}" -qq --print-uris source "$src_pkg=$version-1" 2>/dev/null |
    grep "${src_pkg}_${version}.orig.tar.xz") || die "sid has no $src_pkg $version-1 source"
  read -r quoted _ _ hash <<<"$line"
  log "downloading ${src_pkg}_${version}.orig.tar.xz"
  /usr/lib/apt/apt-helper "${sandbox[@]}" download-file "${quoted//\'/}" "$tarball.part" "$hash" >&2 ||
    die "downloading the $src_pkg source tarball failed"
  mv "$tarball.part" "$tarball"
fi

# github.com/containerd/ttrpc, whole, from the tarball: integration/streaming sits in it.
gp="$build/gopath"
ttrpc_dir="$gp/src/github.com/containerd/ttrpc"
if [[ ! -f $ttrpc_dir/integration/streaming/test.proto ]]; then
  rm -rf "$ttrpc_dir" && mkdir -p "$ttrpc_dir"
  tar -xJf "$tarball" -C "$ttrpc_dir" --strip-components=1
fi
cp "$ttrpc_dir/integration/streaming/test.proto" "$build/test.proto"

# protoc ships no well-known .proto files; grpc's source package carries upstream's copies.
wkt_dir=/usr/include
new_src="$go_build/root/usr/share/gocode"
[[ -f $wkt_dir/google/protobuf/empty.proto ]] ||
  wkt_dir="$new_src/src/google.golang.org/grpc/debian/missing-sources/protocolbuffers/protobuf/main/src"
[[ -f $wkt_dir/google/protobuf/empty.proto ]] || die "google/protobuf/empty.proto not found"
protoc -I "$ttrpc_dir/integration/streaming" -I "$wkt_dir" --include_imports \
  --descriptor_set_out="$build/test.binpb" "$ttrpc_dir/integration/streaming/test.proto"

go="$go_build/toolchain/usr/lib/go-1.23/bin/go"
[[ -x $go ]] || die "Go toolchain missing at $go"
export GO111MODULE=off GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS= GOENV=off
export GOCACHE="$go_build/gocache"
mkdir -p "$gp/src/ttrpces/interop"
ln -sfn "$here" "$gp/src/ttrpces/interop/streaming"
bin="$build/bin"
build_key=$( (cat "$here/setup.sh" "$here"/*.go "$tarball" "$go_build/bin/.stamp") | sha256sum | cut -d' ' -f1)
if [[ $(cat "$bin/.stamp" 2>/dev/null) == "$build_key" && -x $bin/streaming-peer ]]; then
  log "up to date"
  exit 0
fi
mkdir -p "$bin"
log "building streaming-peer (ttrpc $version)"
GOPATH="$gp:$go_build/gopath:$sid_here/.build/root/usr/share/gocode:$new_src" \
  "$go" build -o "$bin/streaming-peer" ttrpces/interop/streaming
echo "$build_key" >"$bin/.stamp"
log "built $bin/streaming-peer"
