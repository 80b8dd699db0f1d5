#!/usr/bin/env bash
# Unpacks Debian sid's containerd 2.1.9 (built with containerd/nri 0.8.0) for the NRI
# interop suite, beside trixie's 1.7.24 (../setup.sh, run first: runc and busybox-static):
#   .build/root/usr/bin/{containerd,ctr,containerd-shim-runc-v2}
# Fetched through a private apt configuration (../../private-apt.sh) and unpacked with
# dpkg-deb, never installed. Idempotent; any failure exits non-zero.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="$here/.build"

log() { echo "containerd-2.1.9-setup: $*" >&2; }
die() {
  echo "containerd-2.1.9-setup: ERROR: $*" >&2
  exit 1
}

bash "$here/../setup.sh" || die "test/interop/nri/setup.sh failed"

mkdir -p "$build"
exec 9>"$build/.lock"
flock 9
# shellcheck source=../../private-apt.sh
source "$here/../../private-apt.sh"
private_apt_unpacked "$build" sid containerd
version=$(dpkg-deb -f "$build"/debs/containerd_*.deb Version)
[[ $version == 2.1.9* ]] || die "sid has containerd $version, not 2.1.9: update this script and its tests"
"$build/root/usr/bin/containerd" --version >/dev/null || die "containerd $version does not run here"
log "containerd $version at $build/root/usr/bin"
