#!/usr/bin/env bash
# Reproduction (not a benchmark): one unauthenticated request whose headers
# exceed libwebsockets' header space ("Ran out of header data space") kills
# `herald serve` with SIGSEGV: LWS_CALLBACK_CLOSED_HTTP arrives with no
# per-session data (user == NULL) and src/server.c writes `p->conn = NULL`.
# Exit status 1 if the server died.
#   bench/live/repro_header_crash.sh [HERALD] [PORT]
set -uo pipefail
cd "$(dirname "$0")/../.."
herald=${1:-build-release/herald}
port=${2:-3289}
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
"$herald" --data "$data" --app examples/twitch-jobs serve --port "$port" >"$data/out" 2>"$data/err" &
pid=$!
for _ in $(seq 50); do grep -q 'listening on' "$data/out" 2>/dev/null && break; sleep 0.1; done
curl -s -o /dev/null -H "X-Pad: $(head -c 5000 /dev/zero | tr '\0' a)" "http://127.0.0.1:$port/" || true
sleep 0.5
if kill -0 "$pid" 2>/dev/null; then
  echo "the server survived a 5,000-byte header"
  kill "$pid"; wait "$pid" 2>/dev/null
  exit 0
fi
wait "$pid"; rc=$?
echo "the server died (exit status $rc) after one GET / with a 5,000-byte header; its stderr:"
tail -n 3 "$data/err"
exit 1
