#!/usr/bin/env bash
# Peer benchmarks (docs/performance.md, "Peers: Triplit"): the same live
# workloads against Herald and against Triplit, in one run, side by side.
# Builds Herald in release mode as bench/live/run.sh does, installs Triplit
# from npm into a scratch folder ($build/peers-npm, outside the tracked
# tree), then for each workload starts a fresh server pinned to core 0
# (Herald: `herald serve`, durable; Triplit: @triplit/server on its LMDB
# store, on disk) and the Node load generator pinned to core 1, and prints
# one markdown table per workload with both servers' figures.
#
#   bench/live/peers/run.sh            10 s windows (about 4 minutes)
#   bench/live/peers/run.sh --quick    3-5 s windows (about 2.5 minutes)
#   bench/live/peers/run.sh --only point,ramp,fanout,memory
#
# Needs Node 20, npm (the npm registry) and the `ws` package for the
# generator (`npm ci` in tests/js, as for bench/live/run.sh).
# HERALD_BENCH_BUILD picks another build folder; HERALD_BENCH_CLIENT_CORE
# another generator core; TRIPLIT_VERSION another @triplit/server.
set -euo pipefail
# The generator's garbage collector: a young generation large enough that the
# messages it parses rarely reach the old one, whose collections paused it ~10 ms
# about once a second at 20,000 messages/s (they showed as every server's p99).
NODE_GC=${NODE_GC:---max-semi-space-size=128}
cd "$(dirname "$0")/../../.."
build=${HERALD_BENCH_BUILD:-build-release}
client_core=${HERALD_BENCH_CLIENT_CORE:-1}
triplit_version=${TRIPLIT_VERSION:-1.1.8}
quick=0
only=point,ramp,fanout,memory
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --only) only=$2; shift ;;
    *) echo "usage: bench/live/peers/run.sh [--quick] [--only point,ramp,fanout,memory]" >&2; exit 2 ;;
  esac
  shift
done
want() { [[ ",$only," == *",$1,"* ]]; }

log=$(mktemp)
details=$(mktemp)
trap 'rm -f "$log" "$details"; rm -rf "$build"/peers-data-*' EXIT
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" --buildtype=release >"$log" 2>&1 || {
    cat "$log"; echo "bench/live/peers/run.sh: meson setup failed" >&2; exit 1; }
fi
ninja -C "$build" herald >"$log" 2>&1 || {
  cat "$log"; echo "bench/live/peers/run.sh: build failed" >&2; exit 1; }
command -v node >/dev/null || { echo "bench/live/peers/run.sh: node is missing" >&2; exit 1; }
if [ ! -f tests/js/node_modules/ws/wrapper.mjs ] && [ ! -f bench/live/node_modules/ws/wrapper.mjs ]; then
  echo "bench/live/peers/run.sh: the ws package is missing: run \`npm ci\` in tests/js" >&2; exit 1
fi

# Triplit and what it needs, from npm, into the scratch folder. lmdb is the
# durable store Triplit's server offers without compiling anything (its
# SQLite store needs better-sqlite3, a native build).
npm_dir="$build/peers-npm"
mkdir -p "$npm_dir"
have=$(node -e "try { console.log(require('./$npm_dir/node_modules/@triplit/server/package.json').version) } catch { }")
if [ "$have" != "$triplit_version" ]; then
  echo "installing @triplit/server@$triplit_version into $npm_dir ..." >&2
  [ -f "$npm_dir/package.json" ] || echo '{"name": "herald-peer-bench", "private": true}' >"$npm_dir/package.json"
  (cd "$npm_dir" && npm install --no-audit --no-fund --loglevel=error \
    "@triplit/server@$triplit_version" "@triplit/client@^1.0" "lmdb@^3" "ws@^8") >"$log" 2>&1 || {
    cat "$log"; echo "bench/live/peers/run.sh: npm install failed" >&2; exit 1; }
fi
version() { node -e "console.log(require('./$npm_dir/node_modules/$1/package.json').version)"; }

# 10,000 connections on each side, plus the servers' files.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 12000 ]; then
  echo "bench/live/peers/run.sh: ulimit -n is $(ulimit -n); the fan-out needs about 10,100 descriptors per process" >&2
fi

data="$build/peers-data"
results="$build/peers-results.jsonl" # every run's figures, one JSON line each; report.mjs reads them
: >"$results"
common=(--herald "$build/herald" --data "$data" --triplit-npm "$npm_dir" --out "$results")
gen() { # runs one generator script pinned to the client core; its tables go to the details
  local script=$1 rc=0; shift
  local cmd
  cmd="taskset -c $client_core node $NODE_GC bench/live/peers/$script $(printf '%q ' "${common[@]}" "$@")"
  echo "running: $cmd" >&2
  { echo "\`${cmd% }\`"; echo; } >>"$details"
  taskset -c "$client_core" node $NODE_GC "bench/live/peers/$script" "${common[@]}" "$@" >>"$details" 2>"$log" || rc=$?
  if [ $rc != 0 ]; then
    { echo "**failed (exit $rc)**; stderr:"; echo '```'; tail -n 20 "$log"; echo '```'; echo; } >>"$details"
  fi
  return $rc
}

echo "## Peers: Herald and Triplit, the same workloads"
echo
echo "- machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p' | head -n 1), $(uname -sr)," \
  "data on $(df -T "$build" | awk 'NR == 2 { print $2 }'), Node $(node --version), servers on core 0, generator on core $client_core"
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
dirty=$(git status --porcelain -- src include meson.build | wc -l)
echo "- Herald: commit $(git rev-parse --short HEAD) (server code as of $(git log -1 --format=%h -- src include meson.build))$([ "$dirty" != 0 ] && echo " with $dirty uncommitted changed files under src/, include/ or meson.build (the build is of the working tree)")," \
  "$build/herald; durable: LMDB, fsync before the ack and before any update leaves"
echo "- Triplit: @triplit/server $(version @triplit/server) (@triplit/db $(version @triplit/db), lmdb-js $(version lmdb)), Node $(node --version)," \
  "bound to 127.0.0.1, storage LMDB on disk through its \`createTriplitStorageProvider('lmdb')\` (lmdb-js defaults: each commit is fsynced, but acknowledged and pushed before its fsync ends), logging at WARN"
echo "- the generator speaks each server's own WebSocket protocol with the \`ws\` package (Herald: \`sub\` to \`videos:getJobById\`, raw \`mutate\` patches; Triplit: its sync protocol's CONNECT_QUERY by id and CHANGES), every connection with the admin key / a service token"
echo "- command: \`bench/live/peers/run.sh$([ $quick = 1 ] && echo ' --quick')$([ "$only" != point,ramp,fanout,memory ] && echo " --only $only")\`"
taskset -c "$client_core" node bench/live/env.mjs --herald "$build/herald" --data "$data-env" 2>"$log" || echo "- env probe failed: $(tail -n 3 "$log")"
echo

if [ $quick = 1 ]; then
  point=(--seconds 5)
  ramp=(--seconds 3)
  fan=(--repeat 10)
else
  point=(--seconds 10)
  ramp=(--seconds 10)
  fan=(--repeat 20)
fi

if want point; then
  for s in herald triplit; do
    gen latency.mjs --server "$s" --workload latency-point --jobs 100 --per-job 10 --rates 100 --port 3391 "${point[@]}" || true
  done
  gen latency.mjs --server triplit --triplit-storage lmdb-sync --variant lmdb-sync --workload latency-point --jobs 100 --per-job 10 \
    --rates 100 --port 3392 "${point[@]}" || true
fi
if want ramp; then
  for s in herald triplit; do
    gen latency.mjs --server "$s" --workload latency-ramp --jobs 500 --per-job 10 --rates 100,250,1000,2000,5000 --port 3393 "${ramp[@]}" || true
  done
fi
if want fanout; then
  gen fanout.mjs --server herald --conns 10000 --port 3394 "${fan[@]}" || true
  # Triplit: 10,000 if it manages, else the largest of 5,000, 2,000, 1,000 that works,
  # and Herald at that size too.
  for n in 10000 5000 2000 1000; do
    if gen fanout.mjs --server triplit --conns "$n" --setup-timeout 120 --port 3395 "${fan[@]}"; then
      [ "$n" != 10000 ] && { gen fanout.mjs --server herald --conns "$n" --port 3396 "${fan[@]}" || true; }
      break
    fi
  done
fi
if want memory; then
  for s in herald triplit; do
    gen memory.mjs --server "$s" --conns 5000 --port 3397 || true
  done
fi

node bench/live/peers/report.mjs "$results"
echo "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "#### Each run's own figures"
echo
cat "$details"
