#!/usr/bin/env bash
# Installs QEMU and builds the guest of the QEMU interop tests, the demo and the
# bench, from Debian packages only:
#   qemu-system-x86 (bookworm, --no-install-recommends)       the hypervisor (QEMU 7.2)
#   .build/guest/vmlinuz   the kernel of linux-image-<abi>-cloud-amd64, taken out of the
#                          .deb with dpkg-deb -x (the package is never installed)
#   .build/guest/initrd    a busybox-static initrd whose /init (guest-init.sh) keeps
#                          dirtying memory, checks earlier slots and prints ticks on ttyS0
#   .build/guest/accel     "kvm" when a guest boots under KVM here, else "tcg": decided by
#                          booting, never by /dev/kvm (which opens on hosts where guests hang)
# Idempotent: nothing is fetched or rebuilt when the outputs exist and the inputs did
# not change. Any failure (e.g. the archive cannot be reached) exits non-zero.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="$here/.build"
guest="$build/guest"

log() { echo "qemu-setup: $*" >&2; }
die() {
  echo "qemu-setup: ERROR: $*" >&2
  exit 1
}

mkdir -p "$build"
# Test workers may run this concurrently; one at a time shares the work.
exec 9>"$build/.lock"
flock 9

sandbox=()
[[ $(id -u) == 0 ]] && sandbox=(-o APT::Sandbox::User=root)
apt_updated=0
apt_update() {
  [[ $apt_updated == 1 ]] && return
  apt-get "${sandbox[@]}" -qq --error-on=any update >&2 || die "apt-get update failed: is the Debian archive reachable?"
  apt_updated=1
}

# --- QEMU ---------------------------------------------------------------------------
if ! command -v qemu-system-x86_64 >/dev/null; then
  [[ $(id -u) == 0 ]] || die "qemu-system-x86_64 is missing and installing it needs root"
  log "installing qemu-system-x86 (no recommends)"
  apt_update
  apt_log="$build/apt-install.log"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86 >"$apt_log" 2>&1 || {
    tail -n 20 "$apt_log" >&2
    die "installing qemu-system-x86 failed: is the Debian archive reachable?"
  }
fi
qemu-system-x86_64 -machine help | grep -q '^pc-q35-7\.2 ' || die "this QEMU has no pc-q35-7.2 machine type"

# --- guest: kernel and busybox from the archive ---------------------------------------
debs="$build/debs"
if ! ls "$debs"/linux-image-*.deb "$debs"/busybox-static_*.deb >/dev/null 2>&1; then
  apt_update
  # The metapackage names the current kernel ABI; the cloud flavour is a third of the size.
  kernel=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/ { print $2; exit }')
  [[ -n $kernel ]] || die "no linux-image-*-cloud-amd64 in the apt lists"
  rm -rf "$debs" && mkdir -p "$debs"
  log "downloading $kernel and busybox-static"
  (cd "$debs" && apt-get "${sandbox[@]}" -qq download "$kernel" busybox-static >&2) ||
    die "downloading $kernel and busybox-static failed: is the Debian archive reachable?"
  rm -rf "$guest"
fi

key=$(cat "$here/setup.sh" "$here/guest-init.sh" | sha256sum | cut -d' ' -f1)$(ls "$debs")
if [[ $(cat "$guest/.stamp" 2>/dev/null) != "$key" ]]; then
  log "building the guest (kernel + busybox initrd)"
  rm -rf "$guest" "$build/root"
  mkdir -p "$guest" "$build/root"
  dpkg-deb -x "$debs"/linux-image-*.deb "$build/root"
  cp "$build/root"/boot/vmlinuz-* "$guest/vmlinuz"
  rm -rf "$build/root"
  initrd_root="$build/initrd-root"
  rm -rf "$initrd_root" "$build/busybox" && mkdir -p "$build/busybox" "$initrd_root"/{bin,dev,proc,sys,mem}
  dpkg-deb -x "$debs"/busybox-static_*.deb "$build/busybox"
  cp "$build/busybox/bin/busybox" "$initrd_root/bin/busybox"
  for applet in sh dd md5sum cat echo sleep mount head cut seq poweroff; do ln -s busybox "$initrd_root/bin/$applet"; done
  install -m 0755 "$here/guest-init.sh" "$initrd_root/init"
  (cd "$initrd_root" && find . | sort | "$build/busybox/bin/busybox" cpio -o -H newc 2>/dev/null | gzip -9 >"$guest/initrd") ||
    die "packing the initrd failed"
  rm -rf "$initrd_root" "$build/busybox"
  rm -f "$guest/accel"
  echo "$key" >"$guest/.stamp"
fi

# --- accelerator: boot a guest under KVM and wait for its first tick ---------------------
if [[ ! -f $guest/accel ]]; then
  accel=tcg
  if [[ -e /dev/kvm ]]; then
    log "probing KVM by booting the guest (up to 20 s)"
    probe_log="$build/kvm-probe.log"
    rm -f "$probe_log"
    timeout 20 qemu-system-x86_64 -machine pc-q35-7.2,accel=kvm -m 128 -nographic -no-reboot \
      -kernel "$guest/vmlinuz" -initrd "$guest/initrd" -append "console=ttyS0 panic=-1 ws=4 chunk=1 ticks=1" \
      -serial "file:$probe_log" -display none -monitor none >/dev/null 2>&1 || true
    grep -q '^tick 1 ' "$probe_log" 2>/dev/null && accel=kvm
  fi
  echo "$accel" >"$guest/accel"
fi
log "ready: $(qemu-system-x86_64 --version | head -n1), guest in ${guest#"$here/"}, accel $(cat "$guest/accel")"
