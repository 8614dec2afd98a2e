#!/usr/bin/env bash
# The whole test suite against the real services (MariaDB, Temporal dev server, versitygw, Redis),
# installing what is missing first. Ends with a plain "N passed, N failed" line.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# The AWS SDK warns on every client that releases after early 2027 need Node 22; we know.
export AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true

say() { printf '[test] %s\n' "$*"; }

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages (npm ci)…"
  npm ci --no-audit --no-fund
fi

# Headless Chromium for the GraphiQL page test (Debian package; no browser download).
if ! command -v "${CHROMIUM_PATH:-chromium}" >/dev/null 2>&1; then
  say "installing chromium (apt-get)…"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi

bash scripts/services.sh up --with-qemu

say "building the GraphiQL bundle…"
node scripts/build-graphiql.mjs

mkdir -p .data/test
results=.data/test/vitest-results.json
rm -f "$results"
set +e
npx vitest run --reporter=default --reporter=json --outputFile.json="$results" "$@"
code=$?
set -e
node scripts/test-summary.mjs "$results"
exit $code
