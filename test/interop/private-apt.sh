# Sourced by the interop setup scripts that fetch from Debian suites this machine does not
# use (sid): a private apt configuration under the caller's .build, with the mirror read
# from the machine's own apt sources, which stay untouched. The caller defines die().

# The mirror of the machine's own apt sources (debian_mirror).
# shellcheck source=../debian-mirror.sh
source "$(dirname "${BASH_SOURCE[0]}")/../debian-mirror.sh"

# private_apt_init DIR TYPE SUITE...: a fresh configuration in DIR with one line
# "TYPE MIRROR SUITE main" per suite (TYPE deb or deb-src), its lists fetched. Sets the
# array apt_private (the options that select it) and sandbox (what apt-helper needs as root).
private_apt_init() {
  local dir=$1 type=$2 mirror suite
  shift 2
  mirror=$(debian_mirror)
  rm -rf "$dir"
  mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
  for suite in "$@"; do printf '%s %s %s main\n' "$type" "$mirror" "$suite"; done >"$dir/sources.list"
  sandbox=()
  # As root, apt would drop to the _apt user, who cannot write into this tree.
  [[ $(id -u) == 0 ]] && sandbox=(-o APT::Sandbox::User=root)
  apt_private=("${sandbox[@]}" -o "Dir::Etc::SourceList=$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache")
  apt-get "${apt_private[@]}" -qq --error-on=any update >&2 ||
    die "apt-get update on $* ($type) failed: is the Debian archive reachable?"
}

# private_apt_unpacked BUILD SUITE PKG...: downloads the binary packages PKG from SUITE into
# BUILD/debs and unpacks them with dpkg-deb into BUILD/root (never installed); both are
# kept while the package list is unchanged. Sets key, the list's hash, for build stamps.
private_apt_unpacked() {
  local build=$1 suite=$2
  shift 2
  local debs="$build/debs" root="$build/root"
  key=$(printf '%s\n' "$@" | sha256sum | cut -d' ' -f1)
  if [[ $(cat "$debs/.stamp" 2>/dev/null) != "$key" ]]; then
    rm -rf "$debs" "$root"
    mkdir -p "$debs"
    private_apt_init "$build/apt" deb "$suite"
    echo "downloading $# packages from $suite" >&2
    (cd "$debs" && apt-get "${apt_private[@]}" -qq download "$@" >&2) || die "downloading from $suite failed"
    echo "$key" >"$debs/.stamp"
  fi
  if [[ ! -f $root/.unpacked ]]; then
    rm -rf "$root" && mkdir -p "$root"
    for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$root"; done
    touch "$root/.unpacked"
  fi
}
