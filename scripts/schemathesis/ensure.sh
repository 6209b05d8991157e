#!/usr/bin/env bash
# Installs schemathesis (the property-based API fuzzer the OpenAPI test runs,
# test/openapi-fuzz.test.ts) into <repo>/.cache/schemathesis/venv, from PyPI,
# at the pinned version. Does nothing when that version is already there.
# Prints the path of the `st` command on stdout.
#
# Usage: scripts/schemathesis/ensure.sh
set -euo pipefail

VERSION=4.32.5
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$repo_root/.cache/schemathesis/venv"
st="$venv/bin/st"
stamp="$venv/.reasonq-schemathesis-$VERSION"

# The stamp says this version installed; running it says the venv still works (its scripts name the path they were made at).
if [[ -f "$stamp" ]] && "$st" --version >/dev/null 2>&1; then
  echo "$st"
  exit 0
fi
if ! command -v python3 >/dev/null 2>&1; then
  echo "schemathesis: python3 not found; schemathesis $VERSION needs Python >= 3.11 with venv" >&2
  exit 1
fi
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "schemathesis: python3 is $(python3 -V 2>&1); schemathesis $VERSION needs Python >= 3.11" >&2
  exit 1
fi
# Debian splits venv (and ensurepip) into python3-venv.
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
    echo "schemathesis: python3 has no venv module; installing Debian's python3-venv" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >&2 || true
  fi
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || { echo "schemathesis: python3 has no venv module (apt-get install python3-venv)" >&2; exit 1; }
fi
echo "schemathesis: installing $VERSION into $venv" >&2
rm -rf "$venv"
python3 -m venv "$venv" >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION" >&2
"$st" --version >&2
touch "$stamp"
echo "$st"
