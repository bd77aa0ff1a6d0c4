#!/usr/bin/env bash
# The scheduler's lateness (docs/performance.md, "The scheduler"): builds
# Herald in release mode (build-release/), then measures how late
# ctx.scheduler starts runs on an idle durable server and on one carrying
# bench/live's latency workload (5,000 watchers of 500 jobs, one writer),
# server on core 0, generator on core 1, and prints markdown tables.
#
#   bench/sched/run.sh                      300 runs, writer at 2,000/s, once
#   bench/sched/run.sh --repeat 3 --rate 6000
#
# Options go to bench/sched/lateness.py --load. Needs Node 20 and the `ws`
# package (`npm ci` in tests/js), as bench/live does. HERALD_BENCH_BUILD
# picks another build folder; HERALD_BENCH_SERVER_CORE /
# HERALD_BENCH_CLIENT_CORE other cores; NODE_GC the generator's GC flags.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${HERALD_BENCH_BUILD:-build-release}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" --buildtype=release >"$log" 2>&1 || {
    cat "$log"; echo "bench/sched/run.sh: meson setup failed" >&2; exit 1; }
fi
ninja -C "$build" herald >"$log" 2>&1 || {
  cat "$log"; echo "bench/sched/run.sh: build failed" >&2; exit 1; }
command -v node >/dev/null || { echo "bench/sched/run.sh: node is missing" >&2; exit 1; }
# 5,000 watcher connections on each side, plus the server's files.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec /usr/bin/python3 bench/sched/lateness.py "$build/herald" --load "$@"
