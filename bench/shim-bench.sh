#!/usr/bin/env bash
# Shim costs: the reference shim (containerd-shim-ttrpces-v2, on ttrpc-es/shim)
# beside Go's containerd-shim-runc-v2, under trixie's containerd 1.7.24 from
# test/interop/shim/setup.sh, as root:
#   ctr run --rm wall time of a container that exits at once (10 runs each),
#   shim RSS and PSS with one running container,
#   `start` to the address printed (5 runs each).
# Not part of `npm run bench` yet: it needs root, containerd and runc.
#
#   bash test/interop/shim/setup.sh && bash bench/shim-bench.sh
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$repo/test/interop/shim/.build/containerd-1.7/usr/bin"
[[ -x $bin/containerd ]] || { echo "run test/interop/shim/setup.sh first" >&2; exit 1; }
work=$(mktemp -d /tmp/ttrpc-es-shim-bench-XXXX)
cpid=""
cleanup() {
  [[ -n $cpid ]] && kill "$cpid" 2>/dev/null && wait "$cpid" 2>/dev/null
  umount -R -l "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The reference shim and the busybox image, built as the interop tests build them.
out="$repo/node_modules/.cache/ttrpc-es-shim-bench"
mkdir -p "$out"
printf '{"extends":"%s/tsconfig.build.json","compilerOptions":{"outDir":"%s","rootDir":"%s","noCheck":true,"declaration":false,"sourceMap":false,"inlineSources":false},"include":[],"files":["%s/src/shim/reference/main.ts","%s/test/interop/nri/oci-image.ts"]}\n' \
  "$repo" "$out" "$repo" "$repo" "$repo" >"$out/tsconfig.json"
node "$repo/node_modules/typescript/bin/tsc" -p "$out/tsconfig.json"
shim="$out/containerd-shim-ttrpces-v2"
# SHIM_NODE_FLAGS: node flags for the launcher, to compare (e.g. --max-semi-space-size=1).
printf '#!/bin/sh\nexec "%s" %s "%s" "$@"\n' "$(command -v node)" "${SHIM_NODE_FLAGS:-}" "$out/src/shim/reference/main.js" >"$shim"
chmod +x "$shim"
image=localhost/ttrpc-es-shim-busybox:1
mkdir -p "$work/image"
archive=$(node -e "import('$out/test/interop/nri/oci-image.js').then((m) => console.log(m.buildBusyboxImage('$work/image', '$image', ['/bin/busybox', 'sh'])))")

cat >"$work/config.toml" <<C
version = 2
root = "$work/root"
state = "$work/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$work/c.sock"
[ttrpc]
  address = "$work/c.sock.ttrpc"
C
PATH="$bin:$PATH" "$bin/containerd" --config "$work/config.toml" 2>"$work/log" &
cpid=$!
until grep -q "successfully booted" "$work/log"; do sleep 0.1; done
ctr() { "$bin/ctr" --address "$work/c.sock" -n bench "$@"; }
ctr images import "$archive" >/dev/null
ms() { echo $((($(date +%s%N) - $1) / 1000000)); }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2)}'; }

for rt in "$shim" "$bin/containerd-shim-runc-v2"; do
  name=$(basename "$rt")
  ctr run --rm --runtime "$rt" "$image" warm /bin/busybox true
  runs=()
  for i in $(seq 1 10); do
    t0=$(date +%s%N)
    ctr run --rm --runtime "$rt" "$image" "r$i" /bin/busybox true
    runs+=("$(ms "$t0")")
  done
  ctr run -d --runtime "$rt" "$image" long /bin/busybox sleep 600 >/dev/null
  pid=$(pgrep -f -- "-id long " | head -n1)
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
  pss=$(awk '/^Pss:/ {s += $2} END {print s}' "/proc/$pid/smaps")
  ctr task kill -s SIGKILL long >/dev/null
  until ctr task ls | grep -q "long.*STOPPED"; do sleep 0.05; done
  ctr task delete long >/dev/null && ctr containers rm long >/dev/null
  # start alone, as containerd runs it (in a bundle holding config.json); the server it leaves is stopped by pid
  starts=()
  for i in $(seq 1 5); do
    b="$work/bundle-$name-$i" && mkdir -p "$b" && echo '{}' >"$b/config.json"
    t0=$(date +%s%N)
    reply=$(cd "$b" && MAX_SHIM_VERSION=2 TTRPC_ADDRESS="$work/c.sock.ttrpc" "$rt" -namespace startbench -id "s$i" \
      -address "$work/c.sock" start </dev/null)
    starts+=("$(ms "$t0")")
    for p in $(pgrep -f -- "-namespace startbench -id s$i "); do kill "$p"; done
    # Go's shim leaves its socket behind on SIGTERM
    address=$(grep -o 'unix://[0-9a-z/]*' <<<"$reply")
    rm -f "${address#unix://}"
  done
  echo "$name: ctr run --rm median $(median "${runs[@]}") ms [${runs[*]}]; RSS ${rss} kB, PSS ${pss} kB; start median $(median "${starts[@]}") ms [${starts[*]}]"
done
