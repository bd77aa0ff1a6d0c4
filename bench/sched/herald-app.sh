#!/usr/bin/env bash
# `herald` with the folder after `--app` replaced by $HERALD_SCHED_APP.
#
# bench/live's generators start their own server with --app
# examples/twitch-jobs; lateness.py --load hands them this script as
# --herald so that the very server carrying the 5,000-watcher workload also
# has the scheduling functions (jobs:at, jobs:tick, jobs:runs) of an app
# folder it wrote: twitch-jobs plus those. $HERALD_SCHED_HERALD is the real
# binary. `exec` keeps the pid the generator reads /proc with (it starts
# this script under taskset, which execs it in turn).
set -euo pipefail
: "${HERALD_SCHED_HERALD:?the herald binary}" "${HERALD_SCHED_APP:?the app folder}"
args=()
while [ $# -gt 0 ]; do
  if [ "$1" = --app ] && [ $# -gt 1 ]; then
    args+=(--app "$HERALD_SCHED_APP")
    shift 2
    continue
  fi
  args+=("$1")
  shift
done
exec "$HERALD_SCHED_HERALD" "${args[@]}"
