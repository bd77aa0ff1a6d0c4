#!/usr/bin/python3
"""How late ctx.scheduler starts a run (docs/performance.md, "The scheduler"):
N mutations each schedule one run at a random time within the next few
seconds (runAt), on a release build with an otherwise idle server; the
lateness of a run is its row's completedTime minus its scheduledTime (the
commit of the run, so it includes running the function and the group's
fsync). Prints p50, p99 and the maximum.

    /usr/bin/python3 bench/sched/lateness.py [HERALD] [N]
"""
import json
import os
import random
import shutil
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "tests", "server"))
from herald_testlib import Server, http, write_app  # noqa: E402

HERALD = sys.argv[1] if len(sys.argv) > 1 else "build-release/herald"
N = int(sys.argv[2]) if len(sys.argv) > 2 else 300
SCHEMA = """import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";
export default defineSchema({ ticks: defineTable({ n: v.number() }) });
"""
JOBS = r'''
local M = {}
M.tick = herald.internalMutation{args = {n = v.number()}, handler = function(ctx, a)
  ctx.db:insert("ticks", {n = a.n}) end}
M.at = herald.mutation{args = {t = v.number(), n = v.number()}, handler = function(ctx, a)
  return ctx.scheduler:runAt(a.t, "jobs:tick", {n = a.n}) end}
M.runs = herald.query{handler = function(ctx) return ctx.db.system:query("_scheduled_functions"):collect() end}
return M
'''


def main():
    work = tempfile.mkdtemp(prefix="herald-sched-bench-")
    app = write_app(work, SCHEMA, {"jobs": JOBS})
    server = Server(HERALD, app, os.path.join(work, "data"), no_sync=False)
    try:
        start = time.time() * 1000 + 1000
        for n in range(N):
            http(server, "mutation", {"path": "jobs:at",
                                      "args": {"t": start + random.uniform(0, 4000), "n": n}})
        time.sleep(6)
        _, reply = http(server, "query", {"path": "jobs:runs", "args": {}})
        late = sorted(r["completedTime"] - r["scheduledTime"] for r in reply["value"]
                      if r["state"]["kind"] == "success")
        pick = lambda q: late[min(len(late) - 1, int(q * len(late)))]
        print(f"{len(late)} of {N} runs: lateness p50 {pick(0.5):.1f} ms, p99 {pick(0.99):.1f} ms, "
              f"max {late[-1]:.1f} ms")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
