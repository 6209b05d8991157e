#!/usr/bin/env bash
# Builds the embedded FerretDB (SQLite backend) test server to
# <repo>/.cache/ferretdb/ferretdb, only when the binary is missing or older
# than main.go / go.mod / go.sum. Prints the binary path on stdout.
#
# Usage: scripts/ferretdb/build.sh [--force]
set -euo pipefail

src_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$src_dir/../.." && pwd)"
out_dir="$repo_root/.cache/ferretdb"
bin="$out_dir/ferretdb"

if ! command -v go >/dev/null 2>&1; then
  echo "ferretdb build: 'go' not found in PATH; install Go >= 1.24 (https://go.dev/dl/) to build the FerretDB test server" >&2
  exit 1
fi

force=0
if [[ "${1:-}" == "--force" ]]; then
  force=1
fi

needs_build=$force
if [[ ! -x "$bin" ]]; then
  needs_build=1
else
  for f in main.go go.mod go.sum; do
    if [[ "$src_dir/$f" -nt "$bin" ]]; then
      needs_build=1
      break
    fi
  done
fi

if [[ $needs_build -eq 0 ]]; then
  echo "ferretdb build: up to date ($bin)" >&2
  echo "$bin"
  exit 0
fi

mkdir -p "$out_dir"
echo "ferretdb build: building $bin (a cold build downloads modules and can take a few minutes)..." >&2
start=$(date +%s)

# Build to a temp file and rename, so an interrupted build never leaves a
# half-written binary that looks up to date.
tmp="$bin.tmp.$$"
trap 'rm -f "$tmp"' EXIT
(
  cd "$src_dir"
  CGO_ENABLED=0 go build -trimpath -o "$tmp" .
)
mv -f "$tmp" "$bin"
trap - EXIT

echo "ferretdb build: done in $(( $(date +%s) - start ))s" >&2
echo "$bin"
