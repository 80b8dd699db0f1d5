# Sourced by the interop setup scripts that install Debian packages through the
# machine's own apt configuration (root only). The caller defines log() and die().

# machine_apt_install LOG PKG...: apt-get update, then install PKG... without
# recommends; apt's output goes to LOG, whose tail is shown if it fails.
machine_apt_install() {
  local apt_log=$1
  shift
  [[ $(id -u) == 0 ]] || die "$* missing, and installing them needs root"
  log "installing $*"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"; } \
    >"$apt_log" 2>&1 || {
    tail -n 20 "$apt_log" >&2
    die "installing $* failed: is the Debian archive reachable?"
  }
}
