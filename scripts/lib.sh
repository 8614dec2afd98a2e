# Shared by start.sh, test.sh, services.sh and node.sh (sourced, not run).

RECLO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# ---------------------------------------------------------------- Node.js
# The project runs on Node 24 LTS. When the machine's `node` is older, the exact version in .nvmrc
# comes from the npm registry's `node-linux-<arch>` package (a Node binary inside an npm package),
# installed once into .data/node/v<version>/ and put first on PATH, so that npm (ci, run), npx,
# vitest, the build and the product all run on it. Messages go to stderr (the CLI's stdout is data).
RECLO_NODE_MAJOR=24

# node_major [NODE]: the major version of NODE (default: the first node on PATH), 0 when none runs.
node_major() {
  local v
  v="$("${1:-node}" -p 'process.versions.node' 2>/dev/null)" || v=0
  echo "${v%%.*}"
}

# project_node_bin: the bin directory the pinned version lives in (whether installed or not).
project_node_bin() {
  local version arch
  version="$(tr -d ' \tv\r\n' <"$RECLO_ROOT/.nvmrc")"
  case "$(uname -m)" in
    x86_64 | amd64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *)
      printf 'no node-linux package for this machine (%s); install Node %s yourself\n' "$(uname -m)" "$RECLO_NODE_MAJOR" >&2
      return 1
      ;;
  esac
  echo "${RECLO_NODE_DIR:-$RECLO_ROOT/.data/node}/v$version/node_modules/node-linux-$arch/bin"
}

# ensure_node LABEL [--no-install]: nothing when `node` is Node >= 24; else the pinned Node first
# on PATH, installed first unless --no-install (then the machine's node stays when it is missing).
ensure_node() {
  local label=$1 install=1
  [[ ${2:-} == --no-install ]] && install=0
  (($(node_major) >= RECLO_NODE_MAJOR)) && return 0
  local bin version dir pkg
  bin="$(project_node_bin)" || return 1
  version="$(tr -d ' \tv\r\n' <"$RECLO_ROOT/.nvmrc")"
  if [[ "$("$bin/node" -p 'process.versions.node' 2>/dev/null)" != "$version" ]]; then
    ((install)) || return 0
    command -v npm >/dev/null 2>&1 || {
      printf '[%s] Node %s is needed and npm is missing to install it\n' "$label" "$RECLO_NODE_MAJOR" >&2
      return 1
    }
    dir="${bin%/node_modules/*}"
    pkg="${bin%/bin}"
    pkg="${pkg##*/}@$version"
    mkdir -p "${dir%/*}"
    # One installer at a time (start and test may run together); the pinned directory appears
    # complete or not at all.
    (
      flock -w 600 9 || exit 1
      [[ "$("$bin/node" -p 'process.versions.node' 2>/dev/null)" == "$version" ]] && exit 0
      printf '[%s] node %s is older than %s: installing Node %s (npm package %s) into %s…\n' \
        "$label" "$(node -p 'process.versions.node' 2>/dev/null || echo '(none)')" "$RECLO_NODE_MAJOR" "$version" "$pkg" "$dir" >&2
      tmp="$(mktemp -d "$dir.install.XXXXXX")"
      trap 'rm -rf "$tmp"' EXIT
      chmod 755 "$tmp"
      npm install --prefix "$tmp" --no-save --no-package-lock --no-audit --no-fund --loglevel=error "$pkg" >&2 || exit 1
      [[ "$("$tmp/${bin#"$dir"/}/node" -p 'process.versions.node')" == "$version" ]] || exit 1
      rm -rf "$dir"
      mv "$tmp" "$dir"
    ) 9>"${dir%/*}/.install.lock" || {
      printf '[%s] could not install Node %s from the npm registry\n' "$label" "$version" >&2
      return 1
    }
  fi
  export PATH="$bin:$PATH"
  export NODE="$bin/node"
  hash -r
}

# npm ci when node_modules is missing, older than the lock file, or installed by another Node major
# (native modules such as argon2 and the Temporal core bridge belong to the Node that installed them).
# The Node version is recorded next to npm's own stamp, node_modules/.package-lock.json.
ensure_node_modules() {
  local stamp=node_modules/.node-version installed=""
  [[ -f $stamp ]] && installed="$(cat "$stamp")"
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] ||
    [[ ${installed%%.*} != "$(node_major)" ]]; then
    if [[ -n $installed && ${installed%%.*} != "$(node_major)" ]]; then
      printf '[%s] node_modules was installed by Node %s; reinstalling for Node %s (npm ci)…\n' "$1" "$installed" "$(node -p 'process.versions.node')"
    else
      printf '[%s] installing npm packages (npm ci)…\n' "$1"
    fi
    npm ci --no-audit --no-fund
    node -p 'process.versions.node' >"$stamp"
  fi
}

# The key that encrypts secrets at rest (SECRETS_KEY in the README): when neither SECRETS_KEY nor
# SECRETS_KEY_FILE is set, a random one is made once in .data/secrets.key (mode 0600, never committed)
# and SECRETS_KEY_FILE points there. Losing the file loses the access points' keys (re-open them).
ensure_secrets_key() {
  [[ -n ${SECRETS_KEY:-} || -n ${SECRETS_KEY_FILE:-} ]] && return 0
  local file="${RECLO_DATA_DIR:-$PWD/.data}/secrets.key"
  if [[ ! -s $file ]]; then
    mkdir -p "$(dirname "$file")"
    (umask 077 && head -c 32 /dev/urandom | base64 >"$file.tmp" && mv "$file.tmp" "$file")
  fi
  export SECRETS_KEY_FILE="$file"
}

# Runs the built product. Production mode unless NODE_ENV is set explicitly (NODE_ENV=development
# for stack traces and internal error messages in responses); the banner says which.
run_product() {
  export NODE_ENV="${NODE_ENV:-production}"
  ensure_secrets_key
  # The local services this script starts: the object store is on loopback (see S3_SECRET_ACCESS_KEY in the README).
  export S3_ENDPOINT="${S3_ENDPOINT:-http://127.0.0.1:7070}"
  # V8's young generation up to 32 MiB a half (default 16): an API serving thousands of live
  # subscribers allocates fast, and with small semi-spaces short-lived objects were promoted and
  # copied in scavenges of up to 100 ms that delayed every delivery in flight (bench:subscriptions,
  # bench/README). 64 MiB (until session 17) kept 6-7 KB more RSS per subscriber committed to the
  # young generation, for no lower p99. RECLO_NODE_FLAGS replaces it; bench/ipc.ts
  # PRODUCT_NODE_ARGS must say the same.
  # shellcheck disable=SC2086
  exec node ${RECLO_NODE_FLAGS---max-semi-space-size=32} dist/src/main.js "$@"
}
