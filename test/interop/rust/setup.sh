#!/usr/bin/env bash
# Builds the ttrpc-rust peer of the interop suite from Debian packages only:
#   .build/bin/ttrpc-rust-peer   ttrpc-rust 0.8 (sid's librust-ttrpc-dev), async, Tokio
# The crates are Debian sid's librust-*-dev packages, fetched through a private apt
# configuration under .build/apt (the machine's /etc/apt is only read, for the mirror) and
# unpacked with dpkg-deb, never installed; cargo builds offline with crates.io replaced by
# the unpacked /usr/share/cargo/registry. The toolchain is the machine's cargo when it is
# 1.85 or newer, else Debian 12's cargo-web and rustc-web. Idempotent: downloads and the
# build are skipped when their inputs did not change. Any failure exits non-zero.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="$here/.build"

log() { echo "rust-setup: $*" >&2; }
die() {
  echo "rust-setup: ERROR: $*" >&2
  exit 1
}

# What cargo resolves for Cargo.toml from sid's crates (found by resolving offline
# until nothing was missing). Changing this list invalidates the download stamp.
pkgs=(
  librust-ttrpc-dev librust-async-trait-dev librust-futures-dev librust-protobuf-dev librust-tokio-dev
  librust-proc-macro2-dev librust-quote-dev librust-syn-dev librust-syn-2-dev librust-futures-channel-dev
  librust-futures-core-dev librust-futures-executor-dev librust-futures-io-dev librust-futures-sink-dev
  librust-futures-task-dev librust-futures-util-dev librust-futures-macro-dev librust-once-cell-dev
  librust-protobuf-support-dev librust-protobuf-codegen-dev librust-protobuf-parse-dev librust-thiserror-dev
  librust-thiserror-1-dev librust-thiserror-impl-dev librust-thiserror-impl-1-dev librust-bytes-dev
  librust-mio-dev librust-pin-project-lite-dev librust-tokio-macros-dev librust-libc-dev librust-socket2-dev
  librust-socket2-0.5-dev librust-signal-hook-registry-dev librust-byteorder-dev librust-crossbeam-dev
  librust-crossbeam-channel-dev librust-crossbeam-deque-dev librust-crossbeam-epoch-dev
  librust-crossbeam-queue-dev librust-crossbeam-utils-dev librust-log-dev librust-nix-dev
  librust-tokio-vsock-dev librust-vsock-dev librust-unicode-ident-dev librust-memchr-dev librust-slab-dev
  librust-errno-dev librust-bitflags-dev librust-cfg-if-dev librust-memoffset-dev librust-cfg-aliases-dev
  librust-anyhow-dev librust-regex-dev librust-regex-automata-dev librust-regex-syntax-dev
  librust-aho-corasick-dev librust-tempfile-dev librust-autocfg-dev librust-indexmap-dev librust-which-dev
  librust-fastrand-dev librust-rustix-dev librust-getrandom-dev librust-equivalent-dev librust-hashbrown-dev
  librust-linux-raw-sys-dev
)

mkdir -p "$build"
exec 9>"$build/.lock"
flock 9

# --- toolchain ----------------------------------------------------------------------
cargo_ok() { # cargo binary: is it 1.85 or newer?
  local v
  v=$("$1" --version 2>/dev/null | awk '{print $2}') || return 1
  [[ -n $v ]] && printf '1.85.0\n%s\n' "${v%%-*}" | sort -V -C
}
cargo=""
for c in "$(command -v cargo || true)" "$HOME/.cargo/bin/cargo" /usr/bin/cargo; do
  if [[ -n $c && -x $c ]] && cargo_ok "$c"; then
    cargo=$c
    break
  fi
done
if [[ -z $cargo ]]; then
  # shellcheck source=../machine-apt.sh
  source "$here/../machine-apt.sh"
  machine_apt_install "$build/apt-install.log" cargo-web rustc-web
  cargo=/usr/bin/cargo
  cargo_ok "$cargo" || die "$cargo is older than 1.85"
fi
export PATH="$(dirname "$cargo"):$PATH"

# --- downloads (sid, private apt configuration) --------------------------------------
# shellcheck source=../private-apt.sh
source "$here/../private-apt.sh"

debs="$build/debs"
root="$build/root"
private_apt_unpacked "$build" sid "${pkgs[@]}"
registry="$root/usr/share/cargo/registry"
[[ -d $registry/$(cd "$registry" && ls -d ttrpc-0.8.* | head -n1) ]] || die "no ttrpc 0.8 crate in $registry"

# --- build ----------------------------------------------------------------------------
bin="$build/bin"
build_key=$( (echo "$key"; "$cargo" --version; cat "$here/setup.sh" "$here/Cargo.toml" "$here/build.rs" \
  "$here/../../proto/ttrpces/interop/v1/interop.proto"; find "$here/src" -name '*.rs' -print0 | sort -z | xargs -0 cat) |
  sha256sum | cut -d' ' -f1)
if [[ $(cat "$bin/.stamp" 2>/dev/null) == "$build_key" && -x $bin/ttrpc-rust-peer ]]; then
  log "up to date: $bin/ttrpc-rust-peer"
  exit 0
fi
log "building ttrpc-rust-peer ($("$cargo" --version), ttrpc $(basename "$(ls -d "$registry"/ttrpc-0.8.*)"))"
# The lock file is made here from what Debian ships; the 2 shared cores build with -j 2.
CARGO_TARGET_DIR="$build/target" "$cargo" build --offline --release -j 2 --manifest-path "$here/Cargo.toml" \
  --config 'source.crates-io.replace-with="debian"' --config "source.debian.directory=\"$registry\"" >&2 ||
  die "cargo build failed"
mkdir -p "$bin"
cp "$build/target/release/ttrpc-rust-peer" "$bin/ttrpc-rust-peer"
echo "$build_key" >"$bin/.stamp"
log "built $bin/ttrpc-rust-peer"
