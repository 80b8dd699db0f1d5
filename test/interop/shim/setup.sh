#!/usr/bin/env bash
# Installs what the shim interop suite runs, from Debian packages only:
#   .build/containerd-1.6/usr/bin/containerd,ctr   bookworm's containerd 1.6.20 (this machine's apt)
#   .build/containerd-1.7/usr/bin/containerd,ctr   trixie's containerd 1.7.24
#   .build/containerd-2.1/usr/bin/containerd,ctr   sid's containerd 2.1.x
# each unpacked with dpkg-deb, never installed, and installs Debian's runc and
# busybox-static (the containers' runtime and their image's only file).
# trixie and sid come through a private apt configuration under .build/apt
# whose mirror is read from this machine's /etc/apt. Idempotent; any failure
# (e.g. the archive cannot be reached) exits non-zero.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="$here/.build"
log() { echo "shim-setup: $*" >&2; }
die() {
  echo "shim-setup: ERROR: $*" >&2
  exit 1
}

mkdir -p "$build"
exec 9>"$build/.lock"
flock 9

sandbox=()
[[ $(id -u) == 0 ]] && sandbox=(-o APT::Sandbox::User=root)

# shellcheck source=../machine-apt.sh
source "$here/../machine-apt.sh"
if ! dpkg -s runc busybox-static >/dev/null 2>&1; then
  machine_apt_install "$build/apt-install.log" runc busybox-static
fi

# shellcheck source=../../debian-mirror.sh
source "$here/../../debian-mirror.sh"

# unpack NAME DEB: containerd's binaries under .build/NAME/usr/bin.
unpack() {
  [[ -x $build/$1/usr/bin/containerd ]] && return
  log "unpacking $(basename "$2") into .build/$1"
  rm -rf "${build:?}/$1" && mkdir -p "$build/$1"
  dpkg-deb -x "$2" "$build/$1"
}

debs="$build/debs"
mkdir -p "$debs/bookworm" "$debs/private"

# bookworm's own containerd through the machine's apt configuration.
if ! compgen -G "$debs/bookworm/containerd_1.6.20*.deb" >/dev/null; then
  log "downloading containerd 1.6.20 (bookworm)"
  (cd "$debs/bookworm" && apt-get "${sandbox[@]}" -qq download 'containerd=1.6.20*' >&2) || {
    apt-get "${sandbox[@]}" -qq --error-on=any update >&2 || die "apt-get update failed: is the Debian archive reachable?"
    (cd "$debs/bookworm" && apt-get "${sandbox[@]}" -qq download 'containerd=1.6.20*' >&2) ||
      die "downloading bookworm's containerd 1.6.20 failed"
  }
fi
unpack containerd-1.6 "$(ls "$debs"/bookworm/containerd_1.6.20*.deb)"

# trixie and sid through a private apt configuration.
if ! compgen -G "$debs/private/containerd_1.7.*.deb" >/dev/null || ! compgen -G "$debs/private/containerd_2.*.deb" >/dev/null; then
  m=$(debian_mirror)
  apt_dir="$build/apt"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
  printf 'deb %s trixie main\ndeb %s sid main\n' "$m" "$m" >"$apt_dir/sources.list"
  apt_private=("${sandbox[@]}" -o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache")
  log "fetching the trixie and sid package lists (private apt config)"
  apt-get "${apt_private[@]}" -qq --error-on=any update >&2 || die "apt-get update on trixie/sid failed: is the Debian archive reachable?"
  log "downloading containerd from trixie and sid"
  (cd "$debs/private" && rm -f containerd_*.deb && apt-get "${apt_private[@]}" -qq download containerd/trixie containerd/sid >&2) ||
    die "downloading containerd from trixie and sid failed"
fi
unpack containerd-1.7 "$(ls "$debs"/private/containerd_1.7.*.deb)"
unpack containerd-2.1 "$(ls "$debs"/private/containerd_2.*.deb)"

for v in 1.6 1.7 2.1; do
  log "containerd $v: $("$build/containerd-$v/usr/bin/containerd" --version)"
done

# bootstrap-go: Go's encoding of containerd 2.3's bootstrap messages (no
# containerd 2.3 binary exists here), built with the Go toolchain, sources and
# protoc-gen-go that test/interop/go/setup.sh provides.
bash "$here/../go/setup.sh" || die "test/interop/go/setup.sh failed (Go toolchain and protobuf sources)"
go_build="$here/../go/.build"
go="$go_build/toolchain/usr/lib/go-1.23/bin/go"
gen_go="$go_build/tools/protoc-gen-go"
new_src="$go_build/root/usr/share/gocode"
[[ -x $go && -x $gen_go ]] || die "the Go toolchain or protoc-gen-go is missing under $go_build"
proto_root="$here/../../../proto"
boot_proto="containerd/runtime/bootstrap/v1/bootstrap.proto"
bin="$build/bin"
key=$(cat "$here/setup.sh" "$proto_root/$boot_proto" "$here/bootstrap-go/main.go" | sha256sum | cut -d' ' -f1)
if [[ $(cat "$bin/.stamp" 2>/dev/null) != "$key" || ! -x $bin/bootstrap-go ]]; then
  # protoc ships no well-known types here; grpc's source package carries upstream's copies.
  wkt_dir=/usr/include
  [[ -f $wkt_dir/google/protobuf/any.proto ]] ||
    wkt_dir="$new_src/src/google.golang.org/grpc/debian/missing-sources/protocolbuffers/protobuf/main/src"
  [[ -f $wkt_dir/google/protobuf/any.proto ]] || die "google/protobuf/any.proto not found"
  gp="$build/gopath"
  rm -rf "$gp" && mkdir -p "$gp/src/ttrpces/shim" "$bin"
  ln -sfn "$here/bootstrap-go" "$gp/src/ttrpces/shim/bootstrapgo"
  log "generating Go code for $boot_proto and building bootstrap-go"
  protoc -I "$proto_root" -I "$wkt_dir" --plugin=protoc-gen-go="$gen_go" --go_out="$gp/src" \
    --go_opt="M$boot_proto=ttrpces/shim/bootstrap" "$proto_root/$boot_proto"
  export GO111MODULE=off GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS= GOENV=off
  export GOCACHE="$go_build/gocache" GOPATH="$gp:$new_src"
  "$go" build -o "$bin/bootstrap-go" ttrpces/shim/bootstrapgo
  echo "$key" >"$bin/.stamp"
fi
log "built $bin/bootstrap-go"
