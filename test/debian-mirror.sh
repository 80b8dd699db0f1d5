# Sourced by the setup scripts that fetch Debian packages through a private apt
# configuration: prints the mirror of the machine's own apt sources (deb822 first,
# then sources.list), so no script names a mirror of its own. Needs die().
debian_mirror() {
  local uri
  uri=$(grep -h -m1 '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 | awk '{print $2}' || true)
  if [[ -z $uri && -f /etc/apt/sources.list ]]; then
    uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)
  fi
  [[ -n $uri ]] || die "no Debian mirror found in the apt sources"
  echo "$uri"
}
