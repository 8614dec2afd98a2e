#!/usr/bin/env bash
# One command to run ReClo on this machine: installs what is missing (npm packages, the Temporal
# CLI and versitygw through `go install`), starts the local services, builds, migrates (at start)
# and runs the API + Temporal worker in one process. Ctrl-C stops the product; the services keep
# running (`npm run services -- stop` stops them).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# The AWS SDK warns on every client that releases after early 2027 need Node 22; we know.
export AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true

say() { printf '[start] %s\n' "$*"; }

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages (npm ci)…"
  npm ci --no-audit --no-fund
fi

bash scripts/services.sh up --with-qemu "$@"

say "building (TypeScript + GraphiQL bundle)…"
npm run --silent build

say "starting ReClo (migrations run at start)…"
exec node dist/src/main.js
