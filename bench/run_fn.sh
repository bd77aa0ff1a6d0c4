#!/usr/bin/env bash
# Builds Herald in release mode (build-release-fn/, its own folder so that
# it never races another benchmark's build) and runs the server-function
# benchmark, printing the machine, the date, the command and the markdown
# tables. Arguments go to bench_fn (e.g. --quick, --repeat 7, --docs 50000);
# the databases are created in build-release-fn/bench-fn-data unless --dir
# is given, so they land on the disk the project is on, not in a tmpfs.
# --callgrind (taken here, not passed on) adds a table of instructions per
# operation, counted by valgrind's callgrind on small no-sync runs.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${HERALD_BENCH_BUILD:-build-release-fn}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" --buildtype=release >"$log" 2>&1 || {
    cat "$log"; echo "bench/run_fn.sh: meson setup failed" >&2; exit 1; }
fi
ninja -C "$build" bench/bench_fn >"$log" 2>&1 || {
  cat "$log"; echo "bench/run_fn.sh: build failed" >&2; exit 1; }

callgrind=0
args=()
dir_args=(--dir "$build/bench-fn-data")
for a in "$@"; do
  case "$a" in
    --callgrind) callgrind=1 ;;
    --dir) dir_args=(); args+=("$a") ;;
    *) args+=("$a") ;;
  esac
done

echo "machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p' | head -n 1)," \
  "$(uname -sr), data on $(df -T "$build" | awk 'NR == 2 { print $2 }')"
echo "date:    $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "command: bench/run_fn.sh $*"
echo
"$build/bench/bench_fn" "${dir_args[@]}" "${args[@]+"${args[@]}"}"

if [ "$callgrind" = 1 ]; then
  command -v valgrind >/dev/null || { echo "bench/run_fn.sh: valgrind not found" >&2; exit 1; }
  echo "## Instructions per operation (callgrind, no-sync, 2,000 videos)"
  echo
  echo "Everything inside bench_fn's profile_ops(): for mutations one group of 100 per"
  echo "commit, argument objects built and freed included (the same on both sides);"
  echo "for queries a fresh snapshot and read set per evaluation."
  echo
  echo "| case | operations | instructions per operation |"
  echo "|---|---:|---:|"
  out=$(mktemp)
  for spec in raw-mutation:2000 fn-mutation:2000 raw-get:5000 fn-get:5000 \
              raw-list:100 fn-list:100; do
    what=${spec%%:*} ops=${spec##*:}
    valgrind --tool=callgrind --toggle-collect=profile_ops --callgrind-out-file="$out" \
      "$build/bench/bench_fn" "${dir_args[@]}" --docs 2000 --groups 100 \
      --profile "$what" --ops "$ops" >/dev/null 2>"$log" || {
        cat "$log"; echo "bench/run_fn.sh: callgrind run failed" >&2; exit 1; }
    ir=$(sed -n 's/^summary: *//p' "$out" | head -n 1)
    awk -v w="$what" -v n="$ops" -v ir="$ir" \
      'BEGIN { printf "| %s | %d | %.0f |\n", w, n, ir / n }'
  done
  rm -f "$out"
  echo
fi
rm -rf "$build/bench-fn-data"
