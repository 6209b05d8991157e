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

if [[ -x "$st" && -f "$stamp" ]]; then
  echo "$st"
  exit 0
fi
if ! command -v python3 >/dev/null 2>&1; then
  echo "schemathesis: python3 not found; it needs Python >= 3.9 with venv" >&2
  exit 1
fi
# Debian splits venv (and ensurepip) into python3-venv.
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  ensure_pkg="$repo_root/scripts/ensure-debian-package.sh"
  if [[ -f "$ensure_pkg" ]]; then
    bash "$ensure_pkg" python3-venv >&2 || { echo "schemathesis: python3-venv is missing and could not be installed" >&2; exit 1; }
  else
    echo "schemathesis: python3 has no venv module (apt-get install python3-venv)" >&2
    exit 1
  fi
fi
echo "schemathesis: installing $VERSION into $venv" >&2
rm -rf "$venv"
python3 -m venv "$venv" >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION" >&2
"$st" --version >&2
touch "$stamp"
echo "$st"
