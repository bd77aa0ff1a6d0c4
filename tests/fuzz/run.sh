#!/usr/bin/env bash
# Builds the fuzz targets with clang and libFuzzer (ASan + UBSan) and runs
# each for a while, then merges what it found into the committed corpus
# (tests/fuzz/corpus/<target>/), keeping only inputs that add coverage.
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]
#
# SECONDS per target defaults to 60; TARGET defaults to all twelve. With
# HERALD_FUZZ_MINIMIZE=1 the corpus is re-minimized from scratch instead
# (hand-written seeds, the files not named by a SHA-1, are always kept).
# Crashing inputs land in tests/fuzz/crashes/<target>-crash-<sha1>: rename
# them to say what they show, and copy them into the corpus so the
# ordinary test run (meson test --suite fuzz) replays them.
# Builds go to build-fuzz/ (HERALD_FUZZ_BUILD), which git ignores.
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds=${1:-60}
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(fuzz_json fuzz_keydecode fuzz_schema fuzz_query fuzz_fn fuzz_jwt
                                    fuzz_diff fuzz_proto fuzz_http fuzz_storage fuzz_cron fuzz_snaparc fuzz_replog)
build=${HERALD_FUZZ_BUILD:-build-fuzz}
cc=${CC:-clang}

# Longest input per target: a little above the largest useful seed.
declare -A max_len=([fuzz_json]=8192 [fuzz_keydecode]=1024 [fuzz_schema]=8192 [fuzz_query]=2048
                   [fuzz_fn]=4096 [fuzz_jwt]=4096 [fuzz_diff]=4096 [fuzz_proto]=4096
                   [fuzz_http]=4096 [fuzz_storage]=512 [fuzz_cron]=320 [fuzz_snaparc]=2048 [fuzz_replog]=4096)

# The core includes the function runtime (fn.c, search.c, jwt.c) and fetch
# (fetch.c), so every target links Lua, OpenSSL and libcurl; the system
# libraries are not instrumented.
read -r -a lua_cflags <<< "$(pkg-config --cflags lua5.4)"
read -r -a lua_libs <<< "$(pkg-config --libs lua5.4)"
# HERALD_SOURCE_ROOT: where targets find the fixtures (tests/fixtures/jwt, tests/fuzz/app).
cflags=(-g -O1 -std=c11 -D_GNU_SOURCE -Iinclude -Isrc "${lua_cflags[@]}" -fno-omit-frame-pointer
        -fsanitize=address,undefined -fno-sanitize-recover=undefined
        "-DHERALD_SOURCE_ROOT=\"$PWD\"")
read -r -a curl_libs <<< "$(pkg-config --libs libcurl)"
# Replication (repl.c, replsnap.c) speaks JetStream through libnats.
read -r -a nats_libs <<< "$(pkg-config --libs libnats)"
libs=(-llmdb -lcjson "${lua_libs[@]}" "${curl_libs[@]}" "${nats_libs[@]}" -lssl -lcrypto -lm -lpthread)
# The targets that play a live server (fuzz_server.h) link its sources and libwebsockets.
declare -A live=([fuzz_proto]=1 [fuzz_http]=1)
read -r -a lws_cflags <<< "$(pkg-config --cflags libwebsockets)"
read -r -a lws_libs <<< "$(pkg-config --libs libwebsockets)"

# The storage core, as meson.build lists it in core_src.
mapfile -t core < <(sed -n '/^core_src = files(/,/^)/p' meson.build | grep -o "'src/[^']*'" |
                    tr -d "'")
# And the server, as meson.build lists it in server_src (the console reads plain lines here).
mapfile -t server < <(grep -E '^server_src \+?= files\(' meson.build | grep -o "'src/[^']*'" | tr -d "'")
# The files it answers from the binary (src/assets.h), embedded as meson's custom_target does.
mkdir -p "$build"
python3 src/embed.py --assets src/assets.list . "$build/assets_data.c.new"
cmp -s "$build/assets_data.c.new" "$build/assets_data.c" || mv "$build/assets_data.c.new" "$build/assets_data.c"
rm -f "$build/assets_data.c.new"
server+=("$build/assets_data.c")

mkdir -p "$build/obj" tests/fuzz/crashes
# The function runtime's Lua prelude, embedded as meson's custom_target does.
prelude=$build/fn_prelude.c
if [ ! -f "$prelude" ] || [ src/fn_prelude.lua -nt "$prelude" ]; then
  python3 src/embed.py hd__fn_prelude src/fn_prelude.lua "$prelude"
fi
core+=("$prelude")
compile() { # source... ; appends the objects to the array named by $1
  local -n into=$1
  shift
  for src in "$@"; do
    obj=$build/obj/$(basename "$src" .c).o
    if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ src/server.h -nt "$obj" ]; then
      "$cc" "${cflags[@]}" "${lws_cflags[@]}" -fsanitize=fuzzer-no-link -c "$src" -o "$obj"
    fi
    into+=("$obj")
  done
}
objs=()
compile objs "${core[@]}"
server_objs=()
compile server_objs "${server[@]}"

status=0
for t in "${targets[@]}"; do
  echo "== $t: building"
  extra=()
  [ -n "${live[$t]:-}" ] && extra=("${server_objs[@]}" "${lws_libs[@]}")
  "$cc" "${cflags[@]}" "${lws_cflags[@]}" -fsanitize=fuzzer "tests/fuzz/$t.c" "${objs[@]}" \
    "${extra[@]}" "${libs[@]}" -o "$build/$t"
  corpus=tests/fuzz/corpus/$t
  found=$build/found-$t
  rm -rf "$found" && mkdir -p "$found" "$corpus"
  opts=(-max_len="${max_len[$t]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="tests/fuzz/crashes/$t-")
  # The server prints a line at every reload: stdout is closed (libFuzzer reports on stderr).
  [ -n "${live[$t]:-}" ] && opts+=(-close_fd_mask=1)
  [ -f "tests/fuzz/$t.dict" ] && opts+=(-dict="tests/fuzz/$t.dict")

  echo "== $t: fuzzing for ${seconds}s"
  seeds=()
  [ "$t" = fuzz_schema ] && seeds=(tests/fixtures/schemas)
  if ! "$build/$t" "${opts[@]}" -max_total_time="$seconds" "$found" "$corpus" "${seeds[@]}" \
       > "$build/$t.log" 2>&1; then
    echo "!! $t failed: see $build/$t.log and tests/fuzz/crashes/"
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$build/$t.log" | head -n 5 || true
    status=1
  fi
  tail -n 12 "$build/$t.log" | grep -E '^stat::|^Done' || true

  # Merging on edge coverage only (no hit counters) keeps the corpus to a
  # few hundred files per target instead of thousands.
  echo "== $t: merging $(find "$found" -type f | wc -l) new inputs"
  if [ "${HERALD_FUZZ_MINIMIZE:-0}" = 1 ]; then
    min=$build/min-$t
    rm -rf "$min" && mkdir -p "$min"
    find "$corpus" -maxdepth 1 -type f -regextype posix-extended ! -regex '.*/[0-9a-f]{40}' \
      -exec cp {} "$min" \;
    "$build/$t" -merge=1 -use_counters=0 "${opts[@]}" "$min" "$corpus" "$found" \
      > "$build/$t.merge.log" 2>&1
    rm -rf "$corpus" && mv "$min" "$corpus"
  else
    "$build/$t" -merge=1 -use_counters=0 "${opts[@]}" "$corpus" "$found" \
      > "$build/$t.merge.log" 2>&1
  fi
  echo "== $t: corpus now $(find "$corpus" -type f | wc -l) files"
done
exit $status
