#!/usr/bin/env bash
# Make sure `redis-server` and `redis-cli` are on PATH for the redis tests and
# benchmark. Installs Debian's package when they are missing (needs root).
set -euo pipefail

if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
  exit 0
fi

fail() {
  echo "ensure-redis: $*" >&2
  echo "ensure-redis: install Redis 6.2+ (redis-server and redis-cli) yourself, or run as root on Debian/Ubuntu." >&2
  exit 1
}

command -v apt-get >/dev/null 2>&1 || fail "redis-server is not on PATH and apt-get is not available to install it"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || fail "redis-server is not on PATH and installing it needs root (no sudo found)"
  SUDO="sudo"
fi

echo "ensure-redis: redis-server not found; installing Debian's redis-server" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2 || fail "apt-get update failed"
$SUDO apt-get install -y -qq --no-install-recommends redis-server >&2 || fail "apt-get install redis-server failed"

# The package starts a system service on Debian; the tests start their own servers.
if command -v service >/dev/null 2>&1; then $SUDO service redis-server stop >/dev/null 2>&1 || true; fi

command -v redis-server >/dev/null 2>&1 || fail "redis-server still not on PATH after installing"
command -v redis-cli >/dev/null 2>&1 || fail "redis-cli still not on PATH after installing"
echo "ensure-redis: $(redis-server --version)" >&2
