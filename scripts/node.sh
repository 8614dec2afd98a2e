#!/usr/bin/env bash
# The project's Node.js (see ensure_node in scripts/lib.sh): the machine's node when it is Node >= 24,
# else the pinned Node 24 from .data/node/ (installed from the npm registry on first use).
#
#   bash scripts/node.sh ARGS…   runs `node ARGS…` on it (the `reclo` launcher uses this on an older node)
#   . scripts/node.sh            in an interactive shell: puts it first on PATH (for npx vitest, tsc, …)
if [[ ${BASH_SOURCE[0]} != "$0" ]]; then
  . "$(dirname "${BASH_SOURCE[0]}")/lib.sh" && ensure_node node && printf 'node: %s (%s)\n' "$(command -v node)" "$(node --version)" >&2
  return
fi
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_node node
exec node "$@"
