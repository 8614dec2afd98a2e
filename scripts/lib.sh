# Shared by start.sh and test.sh (sourced, not run).

# The AWS SDK warns on every client that releases after early 2027 need Node 22; we know.
export AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true

# npm ci when node_modules is missing or older than the lock file.
ensure_node_modules() {
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    printf '[%s] installing npm packages (npm ci)…\n' "$1"
    npm ci --no-audit --no-fund
  fi
}

# Runs the built product. Production mode unless NODE_ENV is set explicitly (NODE_ENV=development
# for stack traces and internal error messages in responses); the banner says which.
run_product() {
  export NODE_ENV="${NODE_ENV:-production}"
  # The local services this script starts: the object store is on loopback (see S3_SECRET_ACCESS_KEY in the README).
  export S3_ENDPOINT="${S3_ENDPOINT:-http://127.0.0.1:7070}"
  exec node dist/src/main.js "$@"
}
