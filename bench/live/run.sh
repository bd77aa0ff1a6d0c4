#!/usr/bin/env bash
# Live-server benchmarks (docs/performance.md, "Live server"): builds
# Herald in release mode (build-release/), then for each benchmark starts a
# fresh `herald serve` (durable, data in build-release/bench-live-data, on
# the project's disk) pinned to core 0 and the Node load generator pinned
# to core 1, and prints markdown tables.
#
#   bench/live/run.sh            quick: a few minutes
#   bench/live/run.sh --full     longer windows, more rates and repetitions
#   bench/live/run.sh --only latency,fanout,invalidation,memory,http,consistency,stall,scale,sync
#
# `sync` runs the latency workload twice, the watchers speaking the native
# protocol (diffs) and then Convex's sync protocol (whole values), and the
# same for 20 watchers of one large list; both print bytes per update.
#
# Needs Node 20 and the `ws` package (`npm ci` in tests/js, or `npm install`
# in bench/live). HERALD_BENCH_BUILD picks another build folder;
# HERALD_BENCH_SERVER_CORE / HERALD_BENCH_CLIENT_CORE other cores.
set -euo pipefail
# The generator's garbage collector: a young generation large enough that the
# messages it parses rarely reach the old one, whose collections paused it ~10 ms
# about once a second at 20,000 messages/s (they showed as every server's p99).
NODE_GC=${NODE_GC:---max-semi-space-size=128}
cd "$(dirname "$0")/../.."
build=${HERALD_BENCH_BUILD:-build-release}
client_core=${HERALD_BENCH_CLIENT_CORE:-1}
full=0
only=latency,http,fanout,invalidation,memory,consistency,scale,stall,sync
while [ $# -gt 0 ]; do
  case "$1" in
    --full) full=1 ;;
    --only) only=$2; shift ;;
    *) echo "usage: bench/live/run.sh [--full] [--only LIST]" >&2; exit 2 ;;
  esac
  shift
done
want() { [[ ",$only," == *",$1,"* ]]; }

log=$(mktemp)
trap 'rm -f "$log"; rm -rf "$build"/bench-live-*' EXIT
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" --buildtype=release >"$log" 2>&1 || {
    cat "$log"; echo "bench/live/run.sh: meson setup failed" >&2; exit 1; }
fi
ninja -C "$build" herald bench/raw_push >"$log" 2>&1 || {
  cat "$log"; echo "bench/live/run.sh: build failed" >&2; exit 1; }
command -v node >/dev/null || { echo "bench/live/run.sh: node is missing" >&2; exit 1; }

# 10,000 connections on each side, plus the server's files.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 12000 ]; then
  echo "bench/live/run.sh: ulimit -n is $(ulimit -n); the fan-out needs about 10,100 descriptors per process" >&2
fi

herald="$build/herald"
data="$build/bench-live-data"
gen() { # runs one generator script pinned to the client core, printing its command
  local script=$1 rc=0; shift
  echo "command: \`taskset -c $client_core node $NODE_GC bench/live/$script --herald $herald --data $data $(printf '%q ' "$@")\`"
  echo
  taskset -c "$client_core" node $NODE_GC "bench/live/$script" --herald "$herald" --data "$data" "$@" 2>"$log" || rc=$?
  if [ "$script" = repro_torn.mjs ] && [ $rc = 1 ]; then
    echo; echo "**CONSISTENCY VIOLATION** (see above)"
  elif [ $rc != 0 ]; then
    echo; echo "**bench/live/$script failed (exit $rc)**; its stderr:"; echo '```'; tail -n 30 "$log"; echo '```'
  fi
  echo
}

echo "## Live server benchmarks"
echo
echo "- machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p' | head -n 1), $(uname -sr)," \
  "data on $(df -T "$build" | awk 'NR == 2 { print $2 }'), Node $(node --version), server on core 0, generator on core $client_core"
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
busy() { # per-CPU busy % over one second, and who used it
  local a b
  a=$(grep '^cpu[0-9]' /proc/stat); sleep 1; b=$(grep '^cpu[0-9]' /proc/stat)
  paste <(echo "$a") <(echo "$b") | awk '{ n = (NF / 2); t0 = 0; t1 = 0; for (i = 2; i <= n; i++) { t0 += $i; t1 += $(i + n) }
    i0 = $5 + $6; i1 = $(5 + n) + $(6 + n); printf "%s %d%%, ", $1, 100 * (1 - (i1 - i0) / (t1 - t0)) }'
  top -b -n 2 -d 0.5 | awk '/^top -/ { k++ } k == 2 && $1 ~ /^[0-9]+$/ && $9 + 0 >= 10 { printf "%s %s%%, ", $12, $9 }'
}
echo "- CPUs busy at start (1 s sample): $(busy)"

echo "- command: \`bench/live/run.sh $([ $full = 1 ] && echo --full)\` ($([ $full = 1 ] && echo full || echo quick) mode)"
taskset -c "$client_core" node bench/live/env.mjs --herald "$herald" --data "$data" 2>"$log" || { echo "env probe failed:"; tail "$log"; }
echo

if [ $full = 1 ]; then
  lat_args=(--seconds 10 --rates 100,250,500,1000,1500,2000,3000,4000,6000,8000 --keep-going)
  http_args=(--seconds 10 --rates 100,500,1000,2000,3000,4000,6000 --keep-going)
  fan_args=(--repeat 50)
  inv_args=(--commits 3000 --cycles 3)
  mem_args=(--conns 10000)
  scale_args=(--conns 10000 --big 50000 --writes 20 --hold 70)
  con_args=(--seconds 30)
  con_heavy=(--seconds 30 --heavy 10)
  sync_args=(--seconds 10 --rates 500,1000,2000,4000,6000,8000 --keep-going)
  list_args=(--query list --jobs 200 --watchers 20 --seconds 10 --rates 50,100,200,400 --keep-going)
else
  lat_args=(--seconds 3 --rates 100,250,500,1000,1500,2000,3000,4000,6000,8000)
  http_args=(--seconds 3 --rates 500,1000,2000,3000,4000)
  fan_args=(--repeat 20)
  inv_args=(--commits 1000 --cycles 2)
  mem_args=(--conns 5000)
  scale_args=(--conns 10000 --big 50000 --writes 5 --hold 40)
  con_args=(--seconds 8)
  con_heavy=(--seconds 8 --heavy 10)
  sync_args=(--seconds 3 --rates 500,2000,4000,8000)
  list_args=(--query list --jobs 200 --watchers 20 --seconds 3 --rates 100,200)
fi

if want latency; then
  echo "### 1. Commit-to-client latency, 5,000 watchers of 500 jobs, writer on one WebSocket"
  echo
  gen latency.mjs "${lat_args[@]}"
fi
if want http; then
  echo "### 1b. The same with the writer on HTTP keep-alive (32 connections, \`POST /api/mutation\`)"
  echo
  gen latency.mjs --writer http --http-conns 32 "${http_args[@]}"
fi
if want fanout; then
  echo "### 2. Fan-out: one write, 10,000 watchers of the same query"
  echo
  gen fanout.mjs --raw "${fan_args[@]}"
fi
if want invalidation; then
  echo "### 3. Invalidation cost: 100,000 subscriptions against 100"
  echo
  gen invalidation.mjs "${inv_args[@]}"
  echo "The same without fsync, the CPU alone:"
  echo
  gen invalidation.mjs --no-sync "${inv_args[@]}"
fi
if want memory; then
  echo "### 4. Server memory per idle subscriber connection"
  echo
  gen memory.mjs "${mem_args[@]}"
fi
if want scale; then
  echo "### 5. Many idle connections"
  echo
  # 50,000 connections need as many descriptors in the server (its RLIMIT_NOFILE is this
  # shell's, raised above to the hard limit); scale.mjs holds fewer, and says so, if it is short.
  gen scale.mjs "${scale_args[@]}"
fi
if want stall; then
  echo "### 6. Slow queries beside a pinger: 4 clients calling a 200 ms query in a loop"
  echo
  gen stall.mjs --seconds "$([ $full = 1 ] && echo 10 || echo 5)"
fi
if want sync; then
  echo "### 7. Convex's sync protocol beside the native one: 5,000 watchers of 500 jobs, one writer"
  echo
  echo "The writer is the same native WebSocket in both runs; only the watchers' protocol differs."
  echo
  gen latency.mjs --protocol native "${sync_args[@]}"
  gen latency.mjs --protocol sync "${sync_args[@]}"
  echo "A large value: 20 watchers of \`videos:list\` (the newest 200 videos), each mutation patching one of them:"
  echo
  gen latency.mjs --protocol native "${list_args[@]}"
  gen latency.mjs --protocol sync "${list_args[@]}"
fi
if want consistency; then
  echo "### Consistency checks: one connection whose subscriptions every commit changes together"
  echo
  echo "A client that keeps up (20 \`get\`s, then 20 \`get\`s and 10 slow scanning queries):"
  echo
  gen repro_torn.mjs "${con_args[@]}"
  gen repro_torn.mjs "${con_heavy[@]}"
  echo "A client that stops reading for 2.5 s now and then (server with \`--max-outbound 4096\`, so it falls behind):"
  echo
  gen repro_torn.mjs "${con_args[@]}" --stall 2500 --server-args "--max-outbound 4096"
fi
echo "- CPUs busy at the end (1 s sample): $(busy)"
