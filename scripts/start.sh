#!/usr/bin/env bash
# One command to run ReClo on this machine: installs what is missing (Node 24 when the machine's
# node is older, npm packages, the Temporal CLI and versitygw through `go install`), starts the
# local services, builds, migrates (at start) and runs the API + Temporal worker in one process.
# Ctrl-C stops the product; the services keep running (`npm run services -- stop` stops them).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib.sh

say() { printf '[start] %s\n' "$*"; }

ensure_node start
ensure_node_modules start

bash scripts/services.sh up --with-qemu "$@"

say "building (TypeScript, GraphiQL and web console bundles)…"
npm run --silent build

say "starting ReClo in ${NODE_ENV:-production} mode (migrations run at start)…"
run_product
