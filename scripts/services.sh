#!/usr/bin/env bash
# ReClo local services: Temporal dev server, S3 (versitygw posix), mailpit (SMTP + inbox), MariaDB database,
# optional Redis check and optional QEMU + tesseract install.
#
# Usage: bash scripts/services.sh up|stop|status [--with-qemu]
#
#   up      install missing Go tools (and build reclo-wg, scripts/wireguard.sh), start Temporal + versitygw if they are not
#           running, create the Temporal namespace, the S3 buckets and the MariaDB
#           database. Idempotent: running services are left alone. Exit 1 on failure.
#   stop    stop the Temporal and versitygw processes this script started (pid
#           files). Never touches MariaDB, Redis or processes it did not start.
#   status  one line per service; exit 0 when temporal, s3 and mariadb are up
#           (and qemu when --with-qemu is given), 3 otherwise.
#
# Configuration (environment variables, defaults in brackets):
#   RECLO_DATA_DIR        [<repo>/.data] state: temporal/ s3/ s3-versions/ run/ logs/
#   RECLO_TOOLS_BIN       [$HOME/go/bin] GOBIN for `go install`; tools are looked up
#                         here first, then on PATH
#   RECLO_START_TIMEOUT   [60]  seconds to wait for Temporal / S3 readiness
#   RECLO_LOCK_TIMEOUT    [900] seconds to wait for another up/stop run (flock)
#   RECLO_WITH_QEMU       [0]   1 = same as --with-qemu (install QEMU and tesseract-ocr(-eng)
#                         via apt-get when missing and, as root, create the unprivileged user
#                         QEMU runs as: $QEMU_RUNAS)
#   QEMU_RUNAS            [reclo-qemu] that user (a system user without home or shell)
#   VPN_RUNAS             [reclo-wg] as root, `up` creates this user too: the local access points'
#                         WireGuard helper (reclo-wg, built by scripts/wireguard.sh) drops to it
#   RECLO_EXTRA_DATABASES []    extra databases created by `up` (space/comma separated,
#                         e.g. "reclo_test")
#   RECLO_S3_VERSIONING   [1]   1 = start versitygw with --versioning-dir
#                         $RECLO_DATA_DIR/s3-versions (bucket versioning API works);
#                         0 = without (PutBucketVersioning fails)
#   TEMPORAL_ADDRESS      [127.0.0.1:7233] host:port of the Temporal frontend; a
#                         non-local host is only checked, never started
#   TEMPORAL_NAMESPACE    [default] created if missing
#   S3_ENDPOINT           [http://127.0.0.1:7070] versitygw listens on its host:port;
#                         a non-local host is only checked, never started
#   S3_ACCESS_KEY_ID      [reclo-dev]  versitygw root access key
#   S3_SECRET_ACCESS_KEY  [reclo-dev-secret-key-0123456789]
#   S3_REGION             [us-east-1]
#   S3_BACKUPS_BUCKET     [reclo-backups]
#   S3_IMPORTS_BUCKET     [reclo-imports]
#   S3_ARTIFACTS_BUCKET   [reclo-artifacts]
#   DATABASE_URL          [mysql://root@127.0.0.1:3306/reclo]
#   REDIS_URL             [unset] only checked (and local redis-server started) if set
#
# Pinned tool versions: temporal CLI v1.5.1 (github.com/temporalio/cli/cmd/temporal),
# versitygw v1.7.0 (github.com/versity/versitygw/cmd/versitygw), installed with
# `GOBIN=$RECLO_TOOLS_BIN CGO_ENABLED=0 go install ...` when missing.
#
# Files: $RECLO_DATA_DIR/run/{temporal,versitygw}.pid, run/services.lock,
#        logs/{temporal,versitygw}.log, temporal/temporal.db, s3/<bucket>/...
# versitygw stores object metadata (etag, content-type, checksums) in user xattrs;
# if the filesystem has none it falls back to --sidecar $RECLO_DATA_DIR/meta-s3 (the
# name must not start with ".../s3": versitygw v1.7.0 rejects any sidecar path that
# merely has the gateway root as a string prefix).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"

TEMPORAL_CLI_VERSION="v1.5.1"
TEMPORAL_CLI_MODULE="github.com/temporalio/cli"
TEMPORAL_CLI_PKG="github.com/temporalio/cli/cmd/temporal"
MAILPIT_VERSION="v1.33.1"
MAILPIT_MODULE="github.com/axllent/mailpit"
VERSITYGW_VERSION="v1.7.0"
VERSITYGW_MODULE="github.com/versity/versitygw"
VERSITYGW_PKG="github.com/versity/versitygw/cmd/versitygw"

# ---------------------------------------------------------------- output helpers
log() { printf '[services] %s\n' "$*"; }
warn() { printf '[services] %s\n' "$*" >&2; }
die() {
  warn "ERROR: $*"
  exit 1
}
usage() {
  echo "usage: bash scripts/services.sh up|stop|status [--with-qemu]" >&2
  exit 2
}
have() { command -v "$1" >/dev/null 2>&1; }
# with_timeout SECONDS CMD...: hard upper bound for checks that could hang
with_timeout() {
  local t=$1
  shift
  if have timeout; then timeout --kill-after=5 "$t" "$@"; else "$@"; fi
}
# node_helper SECONDS SCRIPT ARGS...: run scripts/<SCRIPT> from the repo root
node_helper() {
  local t=$1
  shift
  local script=$1
  shift
  (cd "$REPO_ROOT" && with_timeout "$t" node "scripts/$script" "$@")
}
show_log_tail() { # file
  local f=$1
  if [[ -s $f ]]; then
    warn "last 20 lines of $f:"
    tail -n 20 "$f" | sed 's/^/[services]   | /' >&2
  else
    warn "(log file $f is empty or missing)"
  fi
}
mask_url() { sed -E 's#(//[^:/@]*:)[^@]*@#\1****@#' <<<"$1"; }

# ---------------------------------------------------------------- arguments
CMD="${1:-}"
[[ -n $CMD ]] || usage
shift
WITH_QEMU="${RECLO_WITH_QEMU:-0}"
[[ $WITH_QEMU == 1 || $WITH_QEMU == true || $WITH_QEMU == yes ]] && WITH_QEMU=1 || WITH_QEMU=0
for arg in "$@"; do
  case "$arg" in
    --with-qemu) WITH_QEMU=1 ;;
    -h | --help) usage ;;
    *) warn "unknown argument: $arg"; usage ;;
  esac
done
case "$CMD" in up | stop | status) ;; -h | --help | help) usage ;; *) warn "unknown command: $CMD"; usage ;; esac

# The project's Node for the node helpers below (see ensure_node in scripts/lib.sh): `up`
# installs Node 24 when the machine's node is older; status and stop use it when it is there.
# shellcheck source=lib.sh
. "$SCRIPT_DIR/lib.sh"
if [[ $CMD == up ]]; then ensure_node services; else ensure_node services --no-install; fi

# ---------------------------------------------------------------- configuration
DATA_DIR="${RECLO_DATA_DIR:-$REPO_ROOT/.data}"
mkdir -p "$DATA_DIR"
DATA_DIR="$(cd "$DATA_DIR" && pwd)"
RUN_DIR="$DATA_DIR/run"
LOG_DIR="$DATA_DIR/logs"
TOOLS_BIN="${RECLO_TOOLS_BIN:-${HOME:-/root}/go/bin}"
START_TIMEOUT="${RECLO_START_TIMEOUT:-60}"
LOCK_TIMEOUT="${RECLO_LOCK_TIMEOUT:-900}"
S3_VERSIONING="${RECLO_S3_VERSIONING:-1}"
EXTRA_DATABASES="${RECLO_EXTRA_DATABASES:-}"

export TEMPORAL_ADDRESS="${TEMPORAL_ADDRESS:-127.0.0.1:7233}"
export TEMPORAL_NAMESPACE="${TEMPORAL_NAMESPACE:-default}"
export S3_ENDPOINT="${S3_ENDPOINT:-http://127.0.0.1:7070}"
export S3_ACCESS_KEY_ID="${S3_ACCESS_KEY_ID:-reclo-dev}"
export S3_SECRET_ACCESS_KEY="${S3_SECRET_ACCESS_KEY:-reclo-dev-secret-key-0123456789}"
export S3_REGION="${S3_REGION:-us-east-1}"
export S3_BACKUPS_BUCKET="${S3_BACKUPS_BUCKET:-reclo-backups}"
export S3_IMPORTS_BUCKET="${S3_IMPORTS_BUCKET:-reclo-imports}"
export S3_ARTIFACTS_BUCKET="${S3_ARTIFACTS_BUCKET:-reclo-artifacts}"
export DATABASE_URL="${DATABASE_URL:-mysql://root@127.0.0.1:3306/reclo}"
REDIS_URL="${REDIS_URL:-}"

TEMPORAL_PID_FILE="$RUN_DIR/temporal.pid"
TEMPORAL_LOG="$LOG_DIR/temporal.log"
TEMPORAL_DB_DIR="$DATA_DIR/temporal"
VGW_PID_FILE="$RUN_DIR/versitygw.pid"
VGW_LOG="$LOG_DIR/versitygw.log"
S3_ROOT="$DATA_DIR/s3"
S3_META_DIR="$DATA_DIR/meta-s3"
S3_VERSIONS_DIR="$DATA_DIR/s3-versions"
# mailpit: the local SMTP server and inbox (e-mail alerts, address verification, password resets).
# SMTP_URL is what the product sends to; MAILPIT_URL is its inbox's web UI and API.
export SMTP_URL="${SMTP_URL:-smtp://127.0.0.1:1025}"
export MAILPIT_URL="${MAILPIT_URL:-http://127.0.0.1:8025}"
MAILPIT_PID_FILE="$RUN_DIR/mailpit.pid"
MAILPIT_LOG="$LOG_DIR/mailpit.log"
MAILPIT_DB="$DATA_DIR/mailpit/mailpit.db"
MAILPIT_BIN=""

# Go may be installed but not on PATH (e.g. /usr/local/go/bin).
if ! have go && [[ -x /usr/local/go/bin/go ]]; then PATH="$PATH:/usr/local/go/bin"; fi

# split "host:port" / "[v6]:port" into HP_HOST HP_PORT
split_hostport() { # hostport default_port
  local hp=$1 def=$2
  if [[ $hp == \[* ]]; then
    HP_HOST="${hp%%]*}"
    HP_HOST="${HP_HOST#[}"
    local rest="${hp#*]}"
    HP_PORT="${rest#:}"
  elif [[ $hp == *:* ]]; then
    HP_HOST="${hp%:*}"
    HP_PORT="${hp##*:}"
  else
    HP_HOST="$hp"
    HP_PORT=""
  fi
  [[ -n $HP_PORT ]] || HP_PORT="$def"
  [[ -n $HP_HOST ]] || HP_HOST="127.0.0.1"
}
# parse scheme://[user[:pass]@]host[:port][/path][?query] into HP_HOST HP_PORT
parse_url_hostport() { # url default_port
  local rest="${1#*://}"
  rest="${rest%%/*}"
  rest="${rest%%\?*}"
  rest="${rest##*@}"
  split_hostport "$rest" "$2"
}
join_hostport() { if [[ $1 == *:* ]]; then echo "[$1]:$2"; else echo "$1:$2"; fi; }
is_local_host() {
  case "$1" in 127.* | localhost | ::1 | 0.0.0.0 | "::") return 0 ;; *) return 1 ;; esac
}
valid_port() { [[ $1 =~ ^[0-9]+$ ]] && ((10#$1 > 0 && 10#$1 < 65536)); }

split_hostport "$TEMPORAL_ADDRESS" 7233
T_HOST="$HP_HOST"
T_PORT="$HP_PORT"
valid_port "$T_PORT" || die "TEMPORAL_ADDRESS=$TEMPORAL_ADDRESS: invalid port '$T_PORT'"

case "$S3_ENDPOINT" in
  https://*) S3_DEFAULT_PORT=443 ;;
  http://*) S3_DEFAULT_PORT=80 ;;
  *) die "S3_ENDPOINT must start with http:// or https:// (got $S3_ENDPOINT)" ;;
esac
parse_url_hostport "$S3_ENDPOINT" "$S3_DEFAULT_PORT"
S3_HOST="$HP_HOST"
S3_PORT="$HP_PORT"
valid_port "$S3_PORT" || die "S3_ENDPOINT=$S3_ENDPOINT: invalid port '$S3_PORT'"
S3_LOCAL=0
if [[ $S3_ENDPOINT == http://* ]] && is_local_host "$S3_HOST"; then S3_LOCAL=1; fi

parse_url_hostport "$DATABASE_URL" 3306
DB_HOST="$HP_HOST"
DB_PORT="$HP_PORT"

# ---------------------------------------------------------------- process helpers
port_open() { # host port
  local h=$1 p=$2
  [[ $h == 0.0.0.0 ]] && h=127.0.0.1
  [[ $h == "::" ]] && h=::1
  if have timeout; then
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$h" "$p" 2>/dev/null
  else
    bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$h" "$p" 2>/dev/null
  fi
}
proc_cmdline() { # pid
  if [[ -r /proc/$1/cmdline ]]; then
    tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true
  elif have ps; then
    ps -p "$1" -o command= 2>/dev/null || true
  fi
}
# pid_alive PID PATTERN: process exists and its command line contains PATTERN
# (protects against pid reuse after a reboot / crash).
pid_alive() {
  local pid=$1 pat=$2
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  [[ "$(proc_cmdline "$pid")" == *"$pat"* ]]
}
read_pid() { # pidfile -> prints pid or nothing
  [[ -s $1 ]] && tr -dc '0-9' <"$1" || true
}
# start_daemon NAME LOGFILE PIDFILE CMD...: detached (new session, SIGHUP ignored,
# stdin /dev/null), output appended to LOGFILE, exact pid written to PIDFILE.
start_daemon() {
  local name=$1 logf=$2 pidf=$3
  shift 3
  mkdir -p "$(dirname "$logf")" "$(dirname "$pidf")"
  rm -f "$pidf"
  printf '\n===== %s services.sh: starting %s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$name" "$*" >>"$logf"
  # fd 9 is the flock; the daemon must not inherit it.
  setsid bash -c 'trap "" HUP; echo $$ >"$0"; exec "$@"' "$pidf" "$@" </dev/null >>"$logf" 2>&1 9>&- &
  local i
  for ((i = 0; i < 50; i++)); do
    [[ -s $pidf ]] && return 0
    sleep 0.1
  done
  die "could not start $name (no pid file written); see $logf"
}
# stop_pid NAME PID: TERM, wait up to 10 s, then KILL
stop_pid() {
  local name=$1 pid=$2 i
  kill -TERM "$pid" 2>/dev/null || true
  kill -CONT "$pid" 2>/dev/null || true # in case it was SIGSTOPped
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  warn "$name (pid $pid) did not exit within 10 s after SIGTERM; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  warn "$name (pid $pid) is still alive after SIGKILL"
  return 1
}

acquire_lock() {
  mkdir -p "$RUN_DIR"
  exec 9>>"$RUN_DIR/services.lock"
  if ! flock -n 9; then
    log "another services.sh run holds $RUN_DIR/services.lock; waiting (up to ${LOCK_TIMEOUT}s)…"
    flock -w "$LOCK_TIMEOUT" 9 || die "timed out waiting for $RUN_DIR/services.lock"
  fi
}

# ---------------------------------------------------------------- Go tools
TEMPORAL_BIN=""
VGW_BIN=""
# tool_version_ok BIN MODULE VERSION
tool_version_ok() {
  local bin=$1 module=$2 version=$3
  # `go install` builds report "0.0.0-DEV"/"git" from --version; the module
  # version is in the Go build info.
  if have go && go version -m "$bin" 2>/dev/null | grep -qE "^[[:space:]]+mod[[:space:]]+${module}[[:space:]]+${version}([[:space:]]|$)"; then
    return 0
  fi
  # release binaries: "temporal version 1.5.1 (...)", "Version  : v1.7.0"
  "$bin" --version 2>/dev/null | grep -qE "(^|[^0-9.])v?${version#v}([^0-9]|$)"
}
# find_tool NAME MODULE VERSION: prints path of a matching binary or nothing
find_tool() {
  local name=$1 module=$2 version=$3 cand
  for cand in "$TOOLS_BIN/$name" "$(command -v "$name" 2>/dev/null || true)"; do
    [[ -n $cand && -x $cand ]] || continue
    if tool_version_ok "$cand" "$module" "$version"; then
      echo "$cand"
      return 0
    fi
  done
  return 0
}
# install_tool NAME PKG VERSION LABEL NOTE: go install into $TOOLS_BIN
install_tool() {
  local name=$1 pkg=$2 version=$3 label=$4 note=$5
  have go || die "$label $version is missing and Go is not installed (need Go to run: go install $pkg@$version)"
  log "installing $label $version into $TOOLS_BIN ($note)…"
  mkdir -p "$TOOLS_BIN"
  local ilog="$LOG_DIR/go-install-$name.log"
  mkdir -p "$LOG_DIR"
  if ! GOBIN="$TOOLS_BIN" CGO_ENABLED=0 go install "$pkg@$version" >"$ilog" 2>&1 9>&-; then
    show_log_tail "$ilog"
    die "go install $pkg@$version failed"
  fi
  [[ -x $TOOLS_BIN/$name ]] || die "go install succeeded but $TOOLS_BIN/$name does not exist"
  log "installed $TOOLS_BIN/$name"
}
ensure_temporal_bin() {
  [[ -n $TEMPORAL_BIN ]] && return 0
  TEMPORAL_BIN="$(find_tool temporal "$TEMPORAL_CLI_MODULE" "$TEMPORAL_CLI_VERSION")"
  if [[ -z $TEMPORAL_BIN ]]; then
    install_tool temporal "$TEMPORAL_CLI_PKG" "$TEMPORAL_CLI_VERSION" "temporal CLI" \
      "takes a few minutes the first time"
    TEMPORAL_BIN="$TOOLS_BIN/temporal"
  fi
}
ensure_vgw_bin() {
  [[ -n $VGW_BIN ]] && return 0
  VGW_BIN="$(find_tool versitygw "$VERSITYGW_MODULE" "$VERSITYGW_VERSION")"
  if [[ -z $VGW_BIN ]]; then
    install_tool versitygw "$VERSITYGW_PKG" "$VERSITYGW_VERSION" versitygw "takes a minute or two the first time"
    VGW_BIN="$TOOLS_BIN/versitygw"
  fi
}
# for status: use whatever is there, do not install
lookup_temporal_bin() {
  if [[ -x $TOOLS_BIN/temporal ]]; then echo "$TOOLS_BIN/temporal"; else command -v temporal 2>/dev/null || true; fi
}

# ---------------------------------------------------------------- Temporal
temporal_healthy() { # bin
  local out
  out="$(with_timeout 10 "$1" operator cluster health --address "$TEMPORAL_ADDRESS" --command-timeout 5s 2>/dev/null)" || return 1
  [[ $out == *SERVING* && $out != *NOT_SERVING* ]]
}
temporal_ns_exists() { # bin
  with_timeout 10 "$1" operator namespace describe --namespace "$TEMPORAL_NAMESPACE" --address "$TEMPORAL_ADDRESS" \
    --command-timeout 5s >/dev/null 2>&1
}
ensure_temporal_namespace() {
  if temporal_ns_exists "$TEMPORAL_BIN"; then return 0; fi
  log "creating Temporal namespace $TEMPORAL_NAMESPACE"
  local out
  if ! out="$(with_timeout 20 "$TEMPORAL_BIN" operator namespace create --namespace "$TEMPORAL_NAMESPACE" \
    --address "$TEMPORAL_ADDRESS" --command-timeout 10s 2>&1)"; then
    [[ $out == *"already"* ]] || warn "namespace create: $out"
  fi
  local deadline=$((SECONDS + 30))
  until temporal_ns_exists "$TEMPORAL_BIN"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}
# wait until healthy and the namespace exists; PID (optional) must stay alive
wait_temporal_ready() { # pid|""
  local pid=$1 deadline=$((SECONDS + START_TIMEOUT))
  until temporal_healthy "$TEMPORAL_BIN"; do
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
      warn "Temporal server (pid $pid) exited during startup"
      return 1
    fi
    if ((SECONDS >= deadline)); then
      warn "Temporal at $TEMPORAL_ADDRESS did not report SERVING within ${START_TIMEOUT}s"
      return 1
    fi
    sleep 0.5
  done
  if ! ensure_temporal_namespace; then
    warn "Temporal namespace $TEMPORAL_NAMESPACE does not exist at $TEMPORAL_ADDRESS (and could not be created)"
    return 1
  fi
}

up_temporal() {
  ensure_temporal_bin
  if ! is_local_host "$T_HOST"; then
    if wait_temporal_ready ""; then
      log "temporal: using the remote Temporal server at $TEMPORAL_ADDRESS (namespace $TEMPORAL_NAMESPACE)"
      return 0
    fi
    die "remote Temporal at $TEMPORAL_ADDRESS is not usable (this script only starts local servers)"
  fi

  local pid
  pid="$(read_pid "$TEMPORAL_PID_FILE")"
  if [[ -n $pid ]] && pid_alive "$pid" "server start-dev"; then
    if temporal_healthy "$TEMPORAL_BIN"; then
      ensure_temporal_namespace || die "Temporal namespace $TEMPORAL_NAMESPACE could not be created"
      log "temporal: already running (pid $pid, $TEMPORAL_ADDRESS, namespace $TEMPORAL_NAMESPACE)"
      return 0
    fi
    log "temporal: pid $pid is alive but $TEMPORAL_ADDRESS does not answer yet; waiting up to 15 s"
    local deadline=$((SECONDS + 15))
    while ((SECONDS < deadline)); do
      if temporal_healthy "$TEMPORAL_BIN"; then
        ensure_temporal_namespace || die "Temporal namespace $TEMPORAL_NAMESPACE could not be created"
        log "temporal: already running (pid $pid, $TEMPORAL_ADDRESS, namespace $TEMPORAL_NAMESPACE)"
        return 0
      fi
      sleep 0.5
    done
    log "temporal: pid $pid is not answering; restarting it"
    stop_pid temporal "$pid" || die "could not stop the hung Temporal server (pid $pid)"
    rm -f "$TEMPORAL_PID_FILE"
  elif [[ -e $TEMPORAL_PID_FILE ]]; then
    log "temporal: removing stale pid file (pid ${pid:-?} is not a running temporal process)"
    rm -f "$TEMPORAL_PID_FILE"
  fi

  if temporal_healthy "$TEMPORAL_BIN"; then
    ensure_temporal_namespace || die "Temporal namespace $TEMPORAL_NAMESPACE could not be created on $TEMPORAL_ADDRESS"
    log "temporal: using the Temporal server already listening on $TEMPORAL_ADDRESS (not started by this script; namespace $TEMPORAL_NAMESPACE)"
    return 0
  fi
  if port_open "$T_HOST" "$T_PORT"; then
    die "port $T_PORT on $T_HOST is in use by another process that is not a healthy Temporal server; free it or set TEMPORAL_ADDRESS"
  fi

  mkdir -p "$TEMPORAL_DB_DIR" "$LOG_DIR" "$RUN_DIR"
  # SQLite in WAL mode, synced at checkpoints: its default (a rollback journal created, synced and
  # deleted at every commit) cost the dev server 36.8 s of CPU over the integration tests, WAL
  # 20.2-22.5 s (README "Suite time", session 19). A killed server loses nothing it committed; a
  # power cut may lose the last commits, which a development server can afford.
  local cmd=("$TEMPORAL_BIN" server start-dev --ip "$T_HOST" --port "$T_PORT" --headless
    --db-filename "$TEMPORAL_DB_DIR/temporal.db" --log-level warn
    --sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=normal)
  [[ $TEMPORAL_NAMESPACE == default ]] || cmd+=(--namespace "$TEMPORAL_NAMESPACE")
  log "temporal: starting dev server on $TEMPORAL_ADDRESS (db $TEMPORAL_DB_DIR/temporal.db, log $TEMPORAL_LOG)"
  start_daemon temporal "$TEMPORAL_LOG" "$TEMPORAL_PID_FILE" "${cmd[@]}"
  pid="$(read_pid "$TEMPORAL_PID_FILE")"
  local t0=$SECONDS
  if ! wait_temporal_ready "$pid"; then
    show_log_tail "$TEMPORAL_LOG"
    kill -0 "$pid" 2>/dev/null || rm -f "$TEMPORAL_PID_FILE"
    die "Temporal did not become ready (still running as pid $pid? see $TEMPORAL_LOG; 'services.sh stop' cleans up)"
  fi
  log "temporal: ready after $((SECONDS - t0))s (pid $pid, $TEMPORAL_ADDRESS, namespace $TEMPORAL_NAMESPACE)"
}

# ---------------------------------------------------------------- S3 (versitygw)
s3_list_ok() { node_helper 20 ensure-buckets.mjs --check >/dev/null 2>&1; }
ensure_buckets() {
  if ! node_helper 90 ensure-buckets.mjs --wait 15; then
    [[ $S3_LOCAL == 1 ]] && show_log_tail "$VGW_LOG"
    die "could not create the S3 buckets at $S3_ENDPOINT"
  fi
}
start_versitygw() { # sidecar(0/1) -> 0 ready, 1 failed, 2 xattr unsupported
  local sidecar=$1
  mkdir -p "$S3_ROOT" "$LOG_DIR" "$RUN_DIR"
  local listen
  listen="$(join_hostport "$S3_HOST" "$S3_PORT")"
  local cmd=("$VGW_BIN" --port "$listen" --region "$S3_REGION" --quiet posix)
  if [[ $S3_VERSIONING == 1 ]]; then
    mkdir -p "$S3_VERSIONS_DIR"
    cmd+=(--versioning-dir "$S3_VERSIONS_DIR")
  fi
  if [[ $sidecar == 1 ]]; then
    mkdir -p "$S3_META_DIR"
    cmd+=(--sidecar "$S3_META_DIR")
  fi
  cmd+=("$S3_ROOT")
  log "s3: starting versitygw on $listen (data $S3_ROOT, log $VGW_LOG)"
  local logsize=0
  [[ -f $VGW_LOG ]] && logsize=$(wc -c <"$VGW_LOG")
  ROOT_ACCESS_KEY_ID="$S3_ACCESS_KEY_ID" ROOT_SECRET_ACCESS_KEY="$S3_SECRET_ACCESS_KEY" \
    start_daemon versitygw "$VGW_LOG" "$VGW_PID_FILE" "${cmd[@]}"
  local pid deadline=$((SECONDS + START_TIMEOUT))
  pid="$(read_pid "$VGW_PID_FILE")"
  until port_open "$S3_HOST" "$S3_PORT"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$VGW_PID_FILE"
      if [[ $sidecar == 0 ]] && tail -c +"$((logsize + 1))" "$VGW_LOG" | grep -q "xattr check failed"; then
        return 2
      fi
      warn "versitygw (pid $pid) exited during startup"
      return 1
    fi
    if ((SECONDS >= deadline)); then
      warn "versitygw did not open $listen within ${START_TIMEOUT}s"
      return 1
    fi
    sleep 0.2
  done
  local left=$((deadline - SECONDS))
  ((left > 5)) || left=5
  # readiness = a signed ListBuckets succeeds
  if ! node_helper "$((left + 30))" ensure-buckets.mjs --check --wait "$left" >/dev/null; then
    return 1
  fi
}

# An S3 server this script did not start: use it when our credentials work (log $1), else stop
# with $2 after the check has printed why.
use_foreign_s3() {
  if s3_list_ok; then
    log "$1"
    ensure_buckets
    return 0
  fi
  node_helper 20 ensure-buckets.mjs --check >/dev/null || true
  die "$2"
}

up_s3() {
  if [[ $S3_LOCAL != 1 ]]; then
    use_foreign_s3 "s3: using the S3 endpoint at $S3_ENDPOINT (not local; not started by this script)" \
      "S3 endpoint $S3_ENDPOINT is not usable (this script only starts versitygw for http://localhost endpoints)"
    return 0
  fi

  local pid
  pid="$(read_pid "$VGW_PID_FILE")"
  if [[ -n $pid ]] && pid_alive "$pid" versitygw; then
    if port_open "$S3_HOST" "$S3_PORT" && s3_list_ok; then
      log "s3: versitygw already running (pid $pid, $S3_ENDPOINT)"
      ensure_buckets
      return 0
    fi
    log "s3: versitygw pid $pid is alive but $S3_ENDPOINT does not answer; restarting it"
    stop_pid versitygw "$pid" || die "could not stop the hung versitygw (pid $pid)"
    rm -f "$VGW_PID_FILE"
  elif [[ -e $VGW_PID_FILE ]]; then
    log "s3: removing stale pid file (pid ${pid:-?} is not a running versitygw process)"
    rm -f "$VGW_PID_FILE"
  fi

  if port_open "$S3_HOST" "$S3_PORT"; then
    use_foreign_s3 "s3: using the S3 server already listening on $S3_ENDPOINT (not started by this script)" \
      "port $S3_PORT on $S3_HOST is in use by another process that does not accept our S3 credentials; free it or set S3_ENDPOINT"
    return 0
  fi

  ensure_vgw_bin
  local sidecar=0 rc=0 t0=$SECONDS
  [[ -d $S3_META_DIR ]] && sidecar=1
  start_versitygw "$sidecar" || rc=$?
  if [[ $rc == 2 ]]; then
    log "s3: $S3_ROOT has no user xattr support; restarting versitygw with --sidecar $S3_META_DIR"
    sidecar=1
    rc=0
    start_versitygw 1 || rc=$?
  fi
  if [[ $rc != 0 ]]; then
    show_log_tail "$VGW_LOG"
    pid="$(read_pid "$VGW_PID_FILE")"
    [[ -n $pid ]] && pid_alive "$pid" versitygw && { stop_pid versitygw "$pid" || true; }
    rm -f "$VGW_PID_FILE"
    die "versitygw did not become ready"
  fi
  pid="$(read_pid "$VGW_PID_FILE")"
  log "s3: ready after $((SECONDS - t0))s (pid $pid, $S3_ENDPOINT, metadata in $([[ $sidecar == 1 ]] && echo "sidecar $S3_META_DIR" || echo xattrs))"
  ensure_buckets
}

# ---------------------------------------------------------------- mailpit
mailpit_ready() { curl -fsS --max-time 2 "$MAILPIT_URL/readyz" >/dev/null 2>&1; }
up_mailpit() {
  local smtp_host smtp_port http_host http_port pid
  parse_url_hostport "$SMTP_URL" 25
  smtp_host=$HP_HOST smtp_port=$HP_PORT
  parse_url_hostport "$MAILPIT_URL" 80
  http_host=$HP_HOST http_port=$HP_PORT
  if ! is_local_host "$smtp_host"; then
    log "mail: sending through $(mask_url "$SMTP_URL") (not local; mailpit not started)"
    return 0
  fi
  pid="$(read_pid "$MAILPIT_PID_FILE")"
  if [[ -n $pid ]] && pid_alive "$pid" mailpit; then
    if port_open "$smtp_host" "$smtp_port" && mailpit_ready; then
      log "mail: mailpit already running (pid $pid, smtp $smtp_host:$smtp_port, inbox $MAILPIT_URL)"
      return 0
    fi
    log "mail: mailpit pid $pid does not answer; restarting it"
    stop_pid mailpit "$pid" || die "could not stop the hung mailpit (pid $pid)"
  fi
  rm -f "$MAILPIT_PID_FILE"
  if port_open "$smtp_host" "$smtp_port"; then
    log "mail: something already listens on $smtp_host:$smtp_port (not started by this script); sending to it"
    return 0
  fi
  MAILPIT_BIN="$(find_tool mailpit "$MAILPIT_MODULE" "$MAILPIT_VERSION")"
  if [[ -z $MAILPIT_BIN ]]; then
    install_tool mailpit "$MAILPIT_MODULE" "$MAILPIT_VERSION" mailpit "takes a minute or two the first time"
    MAILPIT_BIN="$TOOLS_BIN/mailpit"
  fi
  mkdir -p "$(dirname "$MAILPIT_DB")"
  log "mail: starting mailpit (smtp $smtp_host:$smtp_port, inbox $MAILPIT_URL, log $MAILPIT_LOG)"
  start_daemon mailpit "$MAILPIT_LOG" "$MAILPIT_PID_FILE" "$MAILPIT_BIN" \
    --smtp "$(join_hostport "$smtp_host" "$smtp_port")" --listen "$(join_hostport "$http_host" "$http_port")" \
    --database "$MAILPIT_DB" --max 5000 --disable-version-check --smtp-auth-accept-any --smtp-auth-allow-insecure
  local deadline=$((SECONDS + START_TIMEOUT))
  pid="$(read_pid "$MAILPIT_PID_FILE")"
  until port_open "$smtp_host" "$smtp_port" && mailpit_ready; do
    if ! kill -0 "$pid" 2>/dev/null; then
      show_log_tail "$MAILPIT_LOG"
      rm -f "$MAILPIT_PID_FILE"
      die "mailpit (pid $pid) exited during startup"
    fi
    ((SECONDS < deadline)) || { show_log_tail "$MAILPIT_LOG"; die "mailpit did not become ready within ${START_TIMEOUT}s"; }
    sleep 0.2
  done
  log "mail: ready (pid $pid)"
}

# ---------------------------------------------------------------- MariaDB
up_mariadb() {
  local masked
  masked="$(mask_url "$DATABASE_URL")"
  # Only the system server on the default port can be started by us.
  if [[ $DB_PORT == 3306 ]] && is_local_host "$DB_HOST" && ! port_open "$DB_HOST" "$DB_PORT" && [[ -x /usr/sbin/mariadbd ]] &&
    have start-stop-daemon && [[ $(id -u) == 0 ]]; then
    log "mariadb: nothing listens on $(join_hostport "$DB_HOST" "$DB_PORT"); starting /usr/sbin/mariadbd"
    if id mysql >/dev/null 2>&1; then
      mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
    fi
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd 9>&- ||
      warn "start-stop-daemon could not start mariadbd"
    local deadline=$((SECONDS + 30))
    until port_open "$DB_HOST" "$DB_PORT"; do
      if ((SECONDS >= deadline)); then
        warn "MariaDB did not open $(join_hostport "$DB_HOST" "$DB_PORT") within 30 s (see /var/log/mysql/ or journalctl)"
        break
      fi
      sleep 0.5
    done
  fi
  local extra=()
  if [[ -n $EXTRA_DATABASES ]]; then
    # shellcheck disable=SC2206
    extra=(${EXTRA_DATABASES//,/ })
  fi
  node_helper 60 ensure-database.mjs "${extra[@]}" ||
    die "MariaDB is not usable (DATABASE_URL=$masked)"
}

# ---------------------------------------------------------------- Redis
redis_ping() {
  if have redis-cli; then
    local out
    out="$(with_timeout 5 redis-cli -u "$REDIS_URL" ping 2>&1)" || true
    [[ $out == *PONG* ]]
  else
    (cd "$REPO_ROOT" && with_timeout 10 node -e '
      const Redis = require("ioredis");
      const r = new Redis(process.argv[1], { lazyConnect: true, connectTimeout: 3000, maxRetriesPerRequest: 0, retryStrategy: () => null });
      r.on("error", () => {});
      r.connect().then(() => r.ping()).then((p) => { r.disconnect(); process.exit(p === "PONG" ? 0 : 1); }, () => process.exit(1));
    ' "$REDIS_URL" >/dev/null 2>&1)
  fi
}
up_redis() {
  [[ -n $REDIS_URL ]] || return 0
  local masked
  masked="$(mask_url "$REDIS_URL")"
  parse_url_hostport "$REDIS_URL" 6379
  local rhost=$HP_HOST rport=$HP_PORT
  if redis_ping; then
    log "redis: answering at $masked"
    return 0
  fi
  if [[ $rport == 6379 ]] && [[ $rhost == 127.0.0.1 || $rhost == localhost ]] && have redis-server &&
    ! port_open "$rhost" "$rport"; then
    log "redis: not running; starting redis-server on 127.0.0.1:6379"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null 9>&- ||
      warn "redis-server failed to start"
    local deadline=$((SECONDS + 10))
    until redis_ping; do
      ((SECONDS < deadline)) || break
      sleep 0.3
    done
    if redis_ping; then
      log "redis: answering at $masked"
      return 0
    fi
  fi
  die "Redis at $masked does not answer PING (start Redis or unset/fix REDIS_URL)"
}

# ---------------------------------------------------------------- QEMU
qemu_present() {
  local a b
  a="$(command -v qemu-system-x86_64 2>/dev/null)" && b="$(command -v qemu-img 2>/dev/null)" && [[ -x $a && -x $b ]]
}
qemu_desc() {
  local v
  v="$(qemu-system-x86_64 --version 2>/dev/null | head -n1 | sed -E 's/.*version ([^ ,]+).*/\1/')"
  echo "qemu-system-x86_64 ${v:-?} + qemu-img ($(command -v qemu-system-x86_64))"
}
# QEMU drops to this user (-runas) when the worker runs as root; create it if missing.
ensure_qemu_user() {
  local user="${QEMU_RUNAS:-reclo-qemu}"
  [[ $(id -u) == 0 ]] || return 0
  if id -u "$user" >/dev/null 2>&1; then
    [[ $(id -u "$user") != 0 ]] || die "QEMU_RUNAS=$user is root; QEMU must run as an unprivileged user"
    return 0
  fi
  have useradd || die "cannot create the QEMU user $user: useradd is missing"
  useradd --system --no-create-home --shell /usr/sbin/nologin "$user" || id -u "$user" >/dev/null 2>&1 || die "useradd $user failed"
  log "qemu: created the unprivileged user $user (QEMU runs as it)"
}
# tesseract reads the screens of boot verifications (OCR); it needs its English data too.
tesseract_present() {
  have tesseract && tesseract --list-langs 2>/dev/null | grep -qx eng
}
tesseract_desc() {
  local v
  v="$(tesseract --version 2>/dev/null | head -n1 | awk '{print $2}')"
  echo "tesseract ${v:-?} + eng ($(command -v tesseract))"
}
# QEMU (qemu-system-x86 qemu-utils) and tesseract (tesseract-ocr tesseract-ocr-eng): whatever is
# missing is installed in one apt-get run.
up_qemu() {
  local pkgs=()
  if qemu_present; then log "qemu: present ($(qemu_desc))"; else pkgs+=(qemu-system-x86 qemu-utils); fi
  if tesseract_present; then log "tesseract: present ($(tesseract_desc))"; else pkgs+=(tesseract-ocr tesseract-ocr-eng); fi
  if [[ ${#pkgs[@]} -eq 0 ]]; then
    ensure_qemu_user
    return 0
  fi
  have apt-get || die "${pkgs[*]} missing and apt-get is not available; install them manually"
  local sudo=()
  if [[ $(id -u) != 0 ]]; then
    have sudo || die "${pkgs[*]} missing; installing needs root (run as root or install sudo)"
    sudo=(sudo -n)
  fi
  log "installing ${pkgs[*]} with apt-get (a few minutes)…"
  local alog="$LOG_DIR/apt-qemu.log"
  mkdir -p "$LOG_DIR"
  : >"$alog"
  if ! "${sudo[@]}" apt-get update >>"$alog" 2>&1 9>&-; then
    show_log_tail "$alog"
    die "apt-get update failed"
  fi
  if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y \
    "${pkgs[@]}" >>"$alog" 2>&1 9>&-; then
    show_log_tail "$alog"
    die "apt-get install ${pkgs[*]} failed"
  fi
  qemu_present || die "QEMU installed but qemu-system-x86_64/qemu-img are still not on PATH"
  tesseract_present || die "tesseract installed but 'tesseract --list-langs' does not list eng"
  log "qemu: $(qemu_desc); tesseract: $(tesseract_desc)"
  ensure_qemu_user
}

# ---------------------------------------------------------------- reclo-wg
# The local target's WireGuard helper (private access to recovered machines), built from
# src/compute/local/wireguard by scripts/wireguard.sh when missing or changed. Without it the local
# target still recovers machines; opening their access point then fails naming the fix. As root, the
# helper drops to $VPN_RUNAS (default reclo-wg, created here) once its sockets are open.
ensure_wg_user() {
  local user="${VPN_RUNAS:-reclo-wg}"
  [[ $(id -u) == 0 ]] || return 0
  if id -u "$user" >/dev/null 2>&1; then
    [[ $(id -u "$user") != 0 ]] || die "VPN_RUNAS=$user is root; the WireGuard helper must run as an unprivileged user"
    return 0
  fi
  have useradd || { warn "cannot create the WireGuard helper's user $user: useradd is missing"; return 0; }
  useradd --system --no-create-home --shell /usr/sbin/nologin "$user" || id -u "$user" >/dev/null 2>&1 || { warn "useradd $user failed"; return 0; }
  log "wireguard: created the unprivileged user $user (the access points' helper runs as it)"
}
up_wireguard() {
  local bin
  ensure_wg_user
  if bin="$(RECLO_DATA_DIR="$DATA_DIR" bash "$SCRIPT_DIR/wireguard.sh" 9>&-)"; then
    log "wireguard: $bin"
  else
    warn "wireguard: reclo-wg could not be built; private access to local machines is unavailable (see above)"
  fi
}

# ---------------------------------------------------------------- commands
cmd_up() {
  local t0=$SECONDS
  acquire_lock
  mkdir -p "$RUN_DIR" "$LOG_DIR"
  log "data dir $DATA_DIR"
  up_mariadb
  up_redis
  up_s3
  up_temporal
  up_mailpit
  up_wireguard
  [[ $WITH_QEMU == 1 ]] && up_qemu
  log "all services up ($((SECONDS - t0))s)"
}

stop_one() { # name pidfile pattern host port
  local name=$1 pidf=$2 pat=$3 host=$4 port=$5 pid
  pid="$(read_pid "$pidf")"
  if [[ -n $pid ]] && pid_alive "$pid" "$pat"; then
    log "$name: stopping pid $pid"
    stop_pid "$name" "$pid" || { rm -f "$pidf"; return 1; }
    log "$name: stopped"
  elif [[ -e $pidf ]]; then
    log "$name: not running (removed stale pid file)"
  elif port_open "$host" "$port"; then
    log "$name: not started by this script; leaving the process on $(join_hostport "$host" "$port") alone"
  else
    log "$name: not running"
  fi
  rm -f "$pidf"
}
cmd_stop() {
  acquire_lock
  local rc=0
  stop_one temporal "$TEMPORAL_PID_FILE" "server start-dev" "$T_HOST" "$T_PORT" || rc=1
  stop_one s3 "$VGW_PID_FILE" versitygw "$S3_HOST" "$S3_PORT" || rc=1
  parse_url_hostport "$SMTP_URL" 25
  stop_one mailpit "$MAILPIT_PID_FILE" mailpit "$HP_HOST" "$HP_PORT" || rc=1
  return $rc
}

status_line() { # name state address pid data extra
  printf '[services] %-9s %-12s %-28s pid %-9s data %s%s\n' "$1" "$2" "$3" "$4" "$5" "${6:+  ($6)}"
}
cmd_status() {
  local rc=0 pid state extra bin

  # temporal
  bin="$(lookup_temporal_bin)"
  pid="$(read_pid "$TEMPORAL_PID_FILE")"
  [[ -n $pid ]] && ! pid_alive "$pid" "server start-dev" && pid=""
  extra=""
  if [[ -n $bin ]] && temporal_healthy "$bin"; then
    state=running
    if temporal_ns_exists "$bin"; then
      extra="namespace $TEMPORAL_NAMESPACE"
    else
      extra="namespace $TEMPORAL_NAMESPACE MISSING"
      rc=3
    fi
    [[ -z $pid ]] && pid=external
  elif [[ -z $bin ]]; then
    rc=3
    if port_open "$T_HOST" "$T_PORT"; then state=unreachable; extra="port open, temporal CLI not installed so health unknown"
    else state=stopped; extra="temporal CLI not installed"; fi
  else
    rc=3
    if [[ -n $pid ]] || port_open "$T_HOST" "$T_PORT"; then state=unreachable; else state=stopped; fi
  fi
  status_line temporal "$state" "$TEMPORAL_ADDRESS" "${pid:--}" "$TEMPORAL_DB_DIR" "$extra"

  # s3
  pid="$(read_pid "$VGW_PID_FILE")"
  [[ -n $pid ]] && ! pid_alive "$pid" versitygw && pid=""
  local names missing=() b
  extra=""
  if names="$(node_helper 20 ensure-buckets.mjs --check 2>/dev/null)"; then
    state=running
    for b in "$S3_BACKUPS_BUCKET" "$S3_IMPORTS_BUCKET" "$S3_ARTIFACTS_BUCKET"; do
      [[ " $names " == *" $b "* ]] || missing+=("$b")
    done
    if ((${#missing[@]})); then extra="missing buckets: ${missing[*]}"; rc=3; else extra="buckets ok"; fi
    [[ -z $pid ]] && pid=external
  else
    rc=3
    if [[ -n $pid ]] || port_open "$S3_HOST" "$S3_PORT"; then state=unreachable; else state=stopped; fi
  fi
  status_line s3 "$state" "$S3_ENDPOINT" "${pid:--}" "$([[ $S3_LOCAL == 1 ]] && echo "$S3_ROOT" || echo -)" "$extra"

  # mariadb
  local out
  if out="$(node_helper 20 ensure-database.mjs --check 2>&1)"; then
    state=running
    [[ $out == *MISSING* ]] && rc=3
  else
    rc=3
    state=unreachable
    out="${out#\[services\] }"
  fi
  status_line mariadb "$state" "$(join_hostport "$DB_HOST" "$DB_PORT")" - - "$out"

  # redis (only when configured)
  if [[ -n $REDIS_URL ]]; then
    if redis_ping; then state=running; else state=unreachable; fi
    status_line redis "$state" "$(mask_url "$REDIS_URL")" - - "optional"
  fi

  # mailpit
  pid="$(read_pid "$MAILPIT_PID_FILE")"
  [[ -n $pid ]] && ! pid_alive "$pid" mailpit && pid=""
  if mailpit_ready; then
    status_line mailpit running "$SMTP_URL" "${pid:-external}" "$MAILPIT_DB" "inbox $MAILPIT_URL"
  else
    status_line mailpit stopped "$SMTP_URL" - - "start with: bash scripts/services.sh up"
    rc=3
  fi

  # qemu
  if qemu_present; then
    status_line qemu present - - - "$(qemu_desc)"
  else
    status_line qemu missing - - - "install with: bash scripts/services.sh up --with-qemu"
    [[ $WITH_QEMU == 1 ]] && rc=3
  fi
  # tesseract (boot verification reads screens with it)
  if tesseract_present; then
    status_line tesseract present - - - "$(tesseract_desc)"
  else
    status_line tesseract missing - - - "install with: bash scripts/services.sh up --with-qemu"
    [[ $WITH_QEMU == 1 ]] && rc=3
  fi
  return $rc
}

case "$CMD" in
  up) cmd_up ;;
  stop) cmd_stop ;;
  status)
    rc=0
    cmd_status || rc=$?
    exit "$rc"
    ;;
esac
