#!/usr/bin/env bash
# ctest's server_openai_client: installs the official `openai` npm client into a cache folder
# under the build directory (once), starts `qwenvl serve` on the tiny fixture model on a free
# loopback port and runs openai_client.mjs against it, then stops the server with SIGTERM and
# checks it exits 0.
# Usage: run_openai_client.sh QWENVL_BINARY FIXTURES_DIR CACHE_DIR
# Exit 77 (ctest: skipped) when node or npm is missing, unless QWENVL_REQUIRE_NODE=1 (CI).
set -euo pipefail
binary=$1 fixtures=$2 cache=$3
here=$(cd "$(dirname "$0")" && pwd)
# openai 4.x: the newest major that supports Debian 12's Node 18.
openai_version=4

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if [ "${QWENVL_REQUIRE_NODE:-0}" = 1 ]; then
    echo "node and npm are required (QWENVL_REQUIRE_NODE=1): apt-get install nodejs npm" >&2
    exit 1
  fi
  echo "SKIPPED: node or npm is not installed (scripts/install-deps.sh installs them)"
  exit 77
fi

if [ ! -f "$cache/node_modules/openai/package.json" ]; then
  mkdir -p "$cache"
  (cd "$cache" && npm install --no-audit --no-fund --silent "openai@$openai_version" >/dev/null)
fi

log=$(mktemp)
"$binary" serve --model "$fixtures/models/tiny-tied" --device cpu --port 0 --api-key test-key \
  --max-request-bytes 1048576 --max-context 4096 >"$log" 2>&1 &
server=$!
cleanup() {
  kill "$server" 2>/dev/null || true
  rm -f "$log"
}
trap cleanup EXIT
port=""
for _ in $(seq 1 600); do
  port=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\)/v1.*|\1|p' "$log")
  [ -n "$port" ] && break
  kill -0 "$server" 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { echo "qwenvl serve printed no URL" >&2; cat "$log" >&2; exit 1; }

# Run from the cache folder, where Node resolves the script's `import 'openai'`.
cp "$here/openai_client.mjs" "$cache/openai_client.mjs"
QWENVL_URL="http://127.0.0.1:$port" QWENVL_KEY=test-key \
  QWENVL_IMAGE="$fixtures/images/banker_70x42.png" node "$cache/openai_client.mjs"

kill -TERM "$server"
status=0
wait "$server" || status=$?
trap - EXIT
rm -f "$log"
[ "$status" -eq 0 ] || { echo "qwenvl serve exited $status after SIGTERM" >&2; exit 1; }
echo "qwenvl serve stopped cleanly"
