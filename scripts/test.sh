#!/usr/bin/env bash
# The whole test suite against the real services (MariaDB, Temporal dev server, versitygw, Redis),
# installing what is missing first (Node 24 when the machine's node is older: see scripts/lib.sh).
# Ends with a plain "N passed, N failed" line.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib.sh

say() { printf '[test] %s\n' "$*"; }

ensure_node test
ensure_node_modules test

# Headless Chromium for the GraphiQL and web console tests (Debian package; no browser download).
if ! command -v "${CHROMIUM_PATH:-chromium}" >/dev/null 2>&1; then
  say "installing chromium (apt-get)…"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi

bash scripts/services.sh up --with-qemu
ensure_secrets_key

say "building the test systems (cached under .data/test-systems)…"
bash scripts/test-systems.sh >/dev/null

say "building the GraphiQL bundle…"
node scripts/build-graphiql.mjs
say "building the web console…"
node scripts/build-console.mjs

mkdir -p .data/test
results=.data/test/vitest-results.json
rm -f "$results"
set +e
npx vitest run --reporter=default --reporter=json --outputFile.json="$results" "$@"
code=$?
set -e
node scripts/test-summary.mjs "$results" "$code"
exit $code
