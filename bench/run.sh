#!/usr/bin/env bash
# Builds Herald in release mode (build-release/) and runs the storage
# benchmark, printing the machine, the date and the markdown tables.
# Arguments go to bench_store (e.g. --quick, --repeat 3, --seconds 5);
# the databases are created in build-release/bench-data unless --dir is
# given, so they land on the disk the project is on, not in a tmpfs.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${HERALD_BENCH_BUILD:-build-release}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" --buildtype=release >"$log" 2>&1 || {
    cat "$log"; echo "bench/run.sh: meson setup failed" >&2; exit 1; }
fi
ninja -C "$build" bench/bench_store >"$log" 2>&1 || {
  cat "$log"; echo "bench/run.sh: build failed" >&2; exit 1; }

dir_args=(--dir "$build/bench-data")
for a in "$@"; do
  [ "$a" = "--dir" ] && dir_args=()
done

echo "machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p' | head -n 1)," \
  "$(uname -sr), data on $(df -T "$build" | awk 'NR == 2 { print $2 }')"
echo "date:    $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "command: bench/run.sh $*"
echo
"$build/bench/bench_store" "${dir_args[@]}" "$@"
rm -rf "$build/bench-data"
