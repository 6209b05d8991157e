#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests need on a
# fresh machine, then runs lint, typecheck and every mocha suite against real
# servers. Ends with the plain line "N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
# The demo reasoner streams its reasoning with a pause between tokens (README quick start); tests run it without.
export REASONQ_DEMO_TOKEN_MS="${REASONQ_DEMO_TOKEN_MS:-0}"

step() { printf '\n== %s\n' "$*" >&2; }
die() {
  printf 'reasonq test: %s\n' "$*" >&2
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
}

step "node modules"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # npm ci refuses a lock that lacks optional packages for other platforms,
  # which a registry mirror may not serve (bullmq's msgpackr-extract for macOS
  # and Windows here): then install from package.json and the same lock.
  npm ci --no-audit --no-fund || {
    echo "reasonq test: npm ci failed; falling back to npm install" >&2
    npm install --no-audit --no-fund || die "npm install failed"
  }
fi
npm run build >/dev/null || die "build failed (npm run build)"

step "lint and typecheck"
npx eslint src transports test scripts || die "lint failed (npx eslint src transports test scripts)"
npx tsc -p tsconfig.check.json || die "typecheck failed (npx tsc -p tsconfig.check.json)"

step "servers the tests need"
if [ -f scripts/redis/ensure-redis.sh ]; then
  bash scripts/redis/ensure-redis.sh || die "redis-server is needed and could not be installed"
fi
if [ -z "${MONGO_URL:-}" ] && [ -f scripts/ferretdb/build.sh ]; then
  # FerretDB is the fallback when mongodb-memory-server cannot download MongoDB.
  bash scripts/ferretdb/build.sh || echo "reasonq test: FerretDB could not be built; the Mongo suites need MONGO_URL or mongodb-memory-server" >&2
fi
if [ -f scripts/schemathesis/ensure.sh ]; then
  # The contract fuzzer (test/openapi-fuzz.test.ts), from PyPI into .cache; without it that test skips, saying why.
  if ! bash scripts/schemathesis/ensure.sh >/dev/null; then
    export REASONQ_SCHEMATHESIS_UNAVAILABLE="scripts/schemathesis/ensure.sh failed in npm test's set-up (its output is above)"
    echo "reasonq test: schemathesis could not be installed; the OpenAPI fuzz test will skip, saying so" >&2
  fi
fi
if [ -f scripts/ensure-chromium.sh ]; then
  bash scripts/ensure-chromium.sh || die "chromium is needed for the browser tests and could not be installed"
fi

step "mocha"
summary=$(mktemp)
if [ "$#" -eq 0 ]; then set -- "test/**/*.test.ts"; fi
REASONQ_SUMMARY_FILE="$summary" npx mocha --reporter ./scripts/mocha-reporter.cjs "$@"
code=$?
read -r passed failed skipped < "$summary" 2>/dev/null || { passed=0; failed=1; skipped=0; }
rm -f "$summary"
[ "$code" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
exit "$code"
