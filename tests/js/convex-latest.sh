#!/usr/bin/env bash
# Runs the official Convex client's test (tests/js/test_convex.mjs) against
# the NEWEST `convex` on npm, or the version given, rather than the one
# pinned in tests/js/package.json: a quick check that a new client release
# still works with Herald before the pin moves.
#
#   tests/js/convex-latest.sh [HERALD] [VERSION]     (defaults: build/herald, latest)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
herald=$(realpath "${1:-$root/build/herald}")
version=${2:-latest}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$root/tests/js/test_convex.mjs" "$root/tests/js/lib.mjs" "$work/"
cd "$work"
echo '{"name":"herald-convex-latest","private":true,"type":"module"}' >package.json
npm install --no-audit --no-fund --loglevel=error "convex@$version" ws >/dev/null
echo "convex $(node -p 'require("./node_modules/convex/package.json").version') against $herald"
node test_convex.mjs "$herald" "$root"
