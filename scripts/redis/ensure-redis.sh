#!/usr/bin/env bash
# redis-server and redis-cli for the redis tests and benchmark (Debian's package).
set -euo pipefail
command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 && exit 0
bash "$(dirname "$0")/../ensure-debian-package.sh" redis-server redis-server redis-cli
# The package starts a system service on Debian; the tests start their own servers.
if command -v service >/dev/null 2>&1; then service redis-server stop >/dev/null 2>&1 || true; fi
