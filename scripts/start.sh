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

# Production keeps restore points under S3 Object Lock (OBJECT_LOCK_MODE defaults to COMPLIANCE):
# the product started here writes to a bucket created with the lock, apart from the tests'
# unlocked reclo-backups (turning versioning on there would change what their deletes do).
if [[ ${NODE_ENV:-production} == production && ${OBJECT_LOCK_MODE:-COMPLIANCE} != OFF ]]; then
  export S3_BACKUPS_BUCKET="${S3_BACKUPS_BUCKET:-reclo-backups-locked}"
  say "backups bucket $S3_BACKUPS_BUCKET with S3 Object Lock (${OBJECT_LOCK_MODE:-COMPLIANCE}, ${OBJECT_LOCK_DAYS:-30} days per restore point)…"
  node scripts/ensure-buckets.mjs --object-lock --wait 15 >/dev/null
fi

say "starting ReClo in ${NODE_ENV:-production} mode (migrations run at start)…"
run_product
