#!/usr/bin/env bash
# Builds the generator's real-world .proto corpus from Debian's Go source packages,
# which ship the upstream .proto files next to the Go code:
#   .build/corpus/containerd-1.6/   golang-github-containerd-containerd-dev (bookworm, 1.6.x),
#                                   with gogo.proto (golang-github-gogo-protobuf-dev) it imports
#   .build/corpus/containerd-1.7/   golang-github-containerd-containerd-dev (trixie, 1.7.x)
#   .build/corpus/containerd-2.1/   golang-github-containerd-containerd-api-dev (sid, 2.1.x)
#   .build/corpus/ttrpc/            golang-github-containerd-ttrpc-dev (trixie)
#   .build/corpus/nri/              golang-github-containerd-nri-dev (trixie)
#   .build/corpus/googleapis/       google/rpc/status.proto (golang-github-gogo-googleapis-dev, trixie)
# Each set is a tree of include roots holding only the .proto files of that set, at the
# paths they are imported by. The packages come through a private apt configuration under
# .build/apt; the machine's /etc/apt is only read, for the mirror. Idempotent; any
# failure (e.g. the archive cannot be reached) exits non-zero.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="$here/.build"
log() { echo "corpus-setup: $*" >&2; }
die() {
  echo "corpus-setup: ERROR: $*" >&2
  exit 1
}

# Packages (name/suite). Changing this list invalidates the download stamp.
pkgs=(
  golang-github-containerd-containerd-dev/bookworm
  golang-github-gogo-protobuf-dev/bookworm
  golang-github-containerd-containerd-dev/trixie
  golang-github-containerd-ttrpc-dev/trixie
  golang-github-containerd-nri-dev/trixie
  golang-github-gogo-googleapis-dev/trixie
  golang-github-containerd-containerd-api-dev/sid
)

mkdir -p "$build"
# Test workers may run this concurrently; one at a time shares the work.
exec 9>"$build/.lock"
flock 9

# shellcheck source=test/interop/private-apt.sh
source "$here/../interop/private-apt.sh"

debs="$build/debs"
key=$( (printf '%s\n' "${pkgs[@]}"; cat "$here/setup.sh") | sha256sum | cut -d' ' -f1)
if [[ $(cat "$build/corpus/.stamp" 2>/dev/null) == "$key" ]]; then
  log "up to date: $build/corpus"
  exit 0
fi

if [[ $(cat "$debs/.stamp" 2>/dev/null) != "$(printf '%s\n' "${pkgs[@]}" | sha256sum)" ]]; then
  rm -rf "$debs" && mkdir -p "$debs"
  log "fetching bookworm, trixie and sid package lists (private apt config)"
  private_apt_init "$build/apt" deb bookworm trixie sid
  log "downloading ${pkgs[*]}"
  (cd "$debs" && apt-get "${apt_private[@]}" -qq download "${pkgs[@]}" >&2) || die "downloading the corpus packages failed"
  printf '%s\n' "${pkgs[@]}" | sha256sum >"$debs/.stamp"
fi

# Unpacks one package (by name and version prefix) into a scratch tree; prints the tree.
unpack() { # name version-glob
  local deb dir="$build/unpacked/$1-$2"
  deb=$(ls "$debs"/"$1"_"$2"*.deb 2>/dev/null | head -n1)
  [[ -n $deb ]] || die "no $1 $2 package in $debs"
  rm -rf "$dir" && mkdir -p "$dir" && dpkg-deb -x "$deb" "$dir"
  echo "$dir/usr/share/gocode/src"
}

# Copies the .proto files below from/sub (minus paths matching exclude) to to/sub.
take() { # from to sub [exclude-regex]
  local from=$1 to=$2 sub=$3 exclude=${4:-^$} n=0 f
  while IFS= read -r f; do
    mkdir -p "$to/$(dirname "$f")" && cp "$from/$f" "$to/$f" && n=$((n + 1))
  done < <(cd "$from" && find "$sub" -name '*.proto' | grep -Ev "$exclude" | sort)
  [[ $n -gt 0 ]] || die "no .proto files below $from/$sub"
}

corpus="$build/corpus"
rm -rf "$corpus" "$build/unpacked"
log "laying out the corpus in $corpus"
cd_src=github.com/containerd/containerd

src=$(unpack golang-github-containerd-containerd-dev 1.6.)
# runtimeoptions imports gogo.proto by a second path ("github.com/gogo/...") as well as
# "gogoproto/gogo.proto": one compilation cannot hold the same file twice.
take "$src" "$corpus/containerd-1.6/gocode" "$cd_src" '/pkg/runtimeoptions/'
src=$(unpack golang-github-gogo-protobuf-dev 1.)
take "$src/github.com/gogo/protobuf" "$corpus/containerd-1.6/gogo" gogoproto

src=$(unpack golang-github-containerd-containerd-dev 1.7.)
# The vendored CRI v1alpha2 API is Kubernetes', not containerd's.
take "$src" "$corpus/containerd-1.7/gocode" "$cd_src" '/third_party/'

src=$(unpack golang-github-containerd-containerd-api-dev 2.1.)
take "$src" "$corpus/containerd-2.1/gocode" "$cd_src/api"

src=$(unpack golang-github-containerd-ttrpc-dev 1.)
take "$src/github.com/containerd/ttrpc" "$corpus/ttrpc" .
src=$(unpack golang-github-containerd-nri-dev 0.)
take "$src/github.com/containerd/nri" "$corpus/nri" pkg/api
src=$(unpack golang-github-gogo-googleapis-dev 1.)
take "$src/github.com/gogo/googleapis" "$corpus/googleapis" google/rpc/status.proto

rm -rf "$build/unpacked"
echo "$key" >"$corpus/.stamp"
log "built $corpus"
