#!/usr/bin/env bash
# Usage: ensure-debian-package.sh PACKAGE COMMAND...
# Exits 0 when every COMMAND (a name on PATH or an absolute path) is there;
# otherwise installs Debian's PACKAGE (root, or sudo) and checks again.
# Exits non-zero with a clear message when that cannot be done.
set -euo pipefail
pkg=${1:?usage: ensure-debian-package.sh PACKAGE COMMAND...}
shift
[ "$#" -gt 0 ] || set -- "$pkg"

have_all() {
  local c
  for c in "$@"; do
    if [[ $c == /* ]]; then [ -x "$c" ] || return 1; else command -v "$c" >/dev/null 2>&1 || return 1; fi
  done
}

fail() {
  echo "ensure $pkg: $*" >&2
  echo "ensure $pkg: install Debian's $pkg package yourself (apt-get install $pkg), or run this as root on Debian/Ubuntu." >&2
  exit 1
}

have_all "$@" && exit 0
command -v apt-get >/dev/null 2>&1 || fail "$* missing and apt-get is not available to install it"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || fail "$* missing and installing it needs root (no sudo found)"
  SUDO="sudo"
fi
echo "ensure $pkg: $* not found; installing Debian's $pkg" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2 || fail "apt-get update failed"
$SUDO apt-get install -y -qq --no-install-recommends "$pkg" >&2 || fail "apt-get install $pkg failed"
have_all "$@" || fail "the $pkg package is installed but $* is still missing"
