#!/usr/bin/env bash
# Builds reclo-wg, the userspace WireGuard helper of the local target's access points (Go source in
# src/compute/local/wireguard, module reclo/wireguard), into $RECLO_DATA_DIR/bin/reclo-wg — only
# when it is missing or its source changed (the SHA-256 of the .go files, go.mod and go.sum is the
# stamp, bin/reclo-wg.sha256). Prints the binary's path on stdout; messages go to stderr. Concurrent
# runs wait for each other (flock). `scripts/services.sh up` runs it; so can a test.
#
# Needs Go (modules from the Go module proxy the first time, then the module cache).
set -euo pipefail

SCRIPT="$(readlink -f "${BASH_SOURCE[0]}")"
ROOT="$(cd "$(dirname "$SCRIPT")/.." && pwd)"
DATA="${RECLO_DATA_DIR:-$ROOT/.data}"
case "$DATA" in /*) ;; *) DATA="$ROOT/$DATA" ;; esac
SRC="$ROOT/src/compute/local/wireguard"
BIN_DIR="$DATA/bin"
BIN="$BIN_DIR/reclo-wg"
STAMP="$BIN.sha256"
LOG="$DATA/logs/go-build-reclo-wg.log"

say() { printf '[wireguard] %s\n' "$*" >&2; }
die() {
  say "ERROR: $*"
  exit 1
}

if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then PATH="$PATH:/usr/local/go/bin"; fi

source_hash() {
  (cd "$SRC" && find . -maxdepth 1 -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}
up_to_date() { [[ -x $BIN && -f $STAMP && "$(cat "$STAMP")" == "$1" ]]; }

want="$(source_hash)"
if up_to_date "$want"; then
  echo "$BIN"
  exit 0
fi

mkdir -p "$BIN_DIR" "$(dirname "$LOG")"
exec 8>>"$BIN_DIR/.reclo-wg.lock"
flock -w 600 8 || die "timed out waiting for $BIN_DIR/.reclo-wg.lock"
if up_to_date "$want"; then
  echo "$BIN"
  exit 0
fi
command -v go >/dev/null 2>&1 || die "reclo-wg is missing or out of date and Go is not installed (needed to build $SRC)"
say "building reclo-wg into $BIN…"
if ! (cd "$SRC" && CGO_ENABLED=0 go build -trimpath -o "$BIN.tmp" .) >"$LOG" 2>&1 8>&-; then
  tail -n 20 "$LOG" | sed 's/^/[wireguard]   | /' >&2
  rm -f "$BIN.tmp"
  die "go build of reclo-wg failed (see $LOG)"
fi
mv -f "$BIN.tmp" "$BIN"
echo "$want" >"$STAMP"
say "built $BIN"
echo "$BIN"
