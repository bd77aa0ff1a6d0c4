#!/usr/bin/env bash
# Replication benchmarks (docs/performance.md, "Replication"): builds Herald
# in release mode (build-bench16/, or HERALD_BENCH_BUILD), then runs, each
# --repeat times, with a NATS cluster of three nats-servers with JetStream
# on loopback that each generator starts and stops (bench/repl/nats.py, in
# a temporary folder), the Herald nodes durable (no --no-sync) with their
# data under the build folder, pinned to core 0 (the fan-out's primary to
# core 1), the generator to core 1, the NATS servers unpinned:
#
#   lag      bench/repl/lag.mjs: a single node (no --replicate), then a primary
#            with 0, 1 and 2 replicas: a writer on the primary at 1,000/s and up a
#            ladder of rates to 24,000/s, then 500 mutations kept in flight; the
#            mutation's latency, the replication lag (replica push - primary ack);
#            subscribers on the primary too, to compare its pushes with the replicas'
#   high     the same from 24,000/s up to 64,000/s and 2,000 in flight, without
#            the primary's subscribers (the generator's core is the limit there)
#   nosync   the lag runs for a single node and 1 replica with --no-sync on every
#            node (fsync apart)
#   floor    bench/repl/js_floor.py: a JetStream publish acknowledged by a stream
#            with 3 copies, one at a time, with nothing else running (the floor
#            under the append) and the NATS servers' CPU per publish
#   fanout   bench/repl/fanout.mjs: 1,000 / 5,000 / 10,000 subscribers of one
#            query on a replica, and on a single node, one write at a time and at
#            fixed write rates
#
#   bench/repl/run.sh [--repeat 3] [--only lag,high,nosync,floor,fanout] [--out DIR]
#
# Prints markdown (bench/repl/report.mjs, medians of the repeats) and keeps
# every run's raw output in DIR (default build-bench16/bench-repl-results/TIME).
# Needs Node 20 with the `ws` package (`npm ci` in bench/repl), python3,
# nats-server 2.9 or newer.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${HERALD_BENCH_BUILD:-build-bench16}
client_core=${HERALD_BENCH_CLIENT_CORE:-1}
repeat=3
only=lag,high,nosync,floor,fanout
out=
while [ $# -gt 0 ]; do
  case "$1" in
    --repeat) repeat=$2; shift ;;
    --only) only=$2; shift ;;
    --out) out=$2; shift ;;
    *) echo "usage: bench/repl/run.sh [--repeat N] [--only LIST] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done
want() { [[ ",$only," == *",$1,"* ]]; }

log=$(mktemp)
trap 'rm -f "$log"; rm -rf "$build"/bench-repl-data' EXIT
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" --buildtype=release >"$log" 2>&1 || { cat "$log"; exit 1; }
fi
ninja -C "$build" herald >"$log" 2>&1 || { cat "$log"; echo "bench/repl/run.sh: build failed" >&2; exit 1; }
command -v node >/dev/null || { echo "bench/repl/run.sh: node is missing" >&2; exit 1; }
[ -d bench/repl/node_modules/ws ] || (cd bench/repl && npm ci --silent) || exit 1

# 10,000 subscribers: as many descriptors in the generator and in the replica.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
out=${out:-$build/bench-repl-results/$(date -u +%Y%m%dT%H%M%S)}
mkdir -p "$out"
herald="$build/herald"
data="$build/bench-repl-data"
NODE_GC=${NODE_GC:---max-semi-space-size=128}

echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(uname -sr)," \
  "data on $(df -T "$build" | awk 'NR == 2 { print $2 }'), Node $(node --version), $(nats-server --version 2>&1 | head -n 1)"
echo "- build: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src include meson.build || echo ' with uncommitted changes in src/'), release"
echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- command: \`bench/repl/run.sh --repeat $repeat --only $only\`; raw output in $out"

gen() { # name, script, args...: one run, its output kept in $out/name.txt
  local name=$1 script=$2 rc=0; shift 2
  echo "$(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg): taskset -c $client_core node bench/repl/$script --herald $herald --data $data $*" >>"$out/commands.txt"
  taskset -c "$client_core" node $NODE_GC "bench/repl/$script" --herald "$herald" --data "$data" "$@" >"$out/$name.txt" 2>"$out/$name.err" || rc=$?
  echo "$(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg): exit $rc" >>"$out/commands.txt"
  [ $rc = 0 ] || { echo "bench/repl/$script $* failed (exit $rc):" >&2; tail -n 20 "$out/$name.err" >&2; }
}

ladder=1000,2000,4000,8000,12000,16000,20000,24000
for i in $(seq 1 "$repeat"); do
  if want lag; then
    for r in -1 0 1 2; do
      gen "lag_r${r}_$i" lag.mjs --replicas "$r" --rates "$ladder" --seconds 5 --saturate 500 --primary-watchers --label "lag r=$r #$i"
    done
  fi
  if want high; then
    for r in -1 0 1 2; do
      gen "high_r${r}_$i" lag.mjs --replicas "$r" --rates 24000,32000,40000,48000,56000,64000 --seconds 5 --saturate 2000 --label "high r=$r #$i"
    done
  fi
  if want nosync; then
    gen "nosync_r-1_$i" lag.mjs --replicas -1 --rates "$ladder" --seconds 5 --saturate 500 --no-sync --label "no-sync r=-1 #$i"
    gen "nosync_r1_$i" lag.mjs --replicas 1 --rates "$ladder" --seconds 5 --saturate 500 --primary-watchers --no-sync --label "no-sync r=1 #$i"
  fi
  if want floor; then
    echo "$(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg): taskset -c $client_core python3 bench/repl/js_floor.py" >>"$out/commands.txt"
    taskset -c "$client_core" python3 bench/repl/js_floor.py >"$out/floor_$i.txt" 2>"$out/floor_$i.err" || tail "$out/floor_$i.err" >&2
  fi
  if want fanout; then
    for r in 1 -1; do
      gen "fanout_r${r}_$i" fanout.mjs --replicas "$r" --conns 1000,5000,10000 --repeat 20 --rates 5,10,20 --seconds 5 --label "fanout r=$r #$i"
    done
  fi
done
echo "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%H:%M UTC')"
echo
node bench/repl/report.mjs "$out"
