#!/usr/bin/env bash
# Make sure Debian's Chromium is at /usr/bin/chromium for the dashboard browser
# test (test/dashboard.test.ts drives it with playwright-core; the machine has
# no internet, so Playwright's own browser downloads are not an option).
# Installs the Debian package when it is missing (needs root).
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
  exit 0
fi

fail() {
  echo "ensure-chromium: $*" >&2
  echo "ensure-chromium: install Debian's chromium package yourself (apt-get install chromium), or run as root on Debian/Ubuntu." >&2
  exit 1
}

command -v apt-get >/dev/null 2>&1 || fail "$CHROMIUM is missing and apt-get is not available to install it"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || fail "$CHROMIUM is missing and installing it needs root (no sudo found)"
  SUDO="sudo"
fi

echo "ensure-chromium: $CHROMIUM not found; installing Debian's chromium (this takes a few minutes)" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2 || fail "apt-get update failed"
$SUDO apt-get install -y -qq --no-install-recommends chromium >&2 || fail "apt-get install chromium failed"

[ -x "$CHROMIUM" ] || fail "the chromium package is installed but $CHROMIUM is still missing"
echo "ensure-chromium: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")" >&2
