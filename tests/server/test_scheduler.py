"""Black-box tests of ctx.scheduler in `herald serve` (docs/functions.md,
"The scheduler"), over HTTP and the native WebSocket protocol:

- runAfter from a mutation runs the scheduled mutation once, after its
  delay (never before), and its row in `_scheduled_functions` goes from
  pending to success with a completedTime;
- a mutation that fails after scheduling schedules nothing;
- cancel stops a run that has not started; cancelling a finished run
  changes nothing;
- a scheduled function that fails has its writes rolled back and its row
  says failed, with the error;
- runs due while the server was down run once after it starts again;
- scheduling a query or an unknown function is refused at once;
- a query of `_scheduled_functions` is live: its subscriber sees the state
  change.

Run as: /usr/bin/python3 test_scheduler.py <herald> <source root>
"""
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import (Server, call_value as call, check, finish, value,  # noqa: E402
                            wait_for, write_app)

HERALD, ROOT = sys.argv[1], sys.argv[2]

SCHEMA = """import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";
export default defineSchema({
  counters: defineTable({ name: v.string(), n: v.number() }).index("by_name", ["name"]),
});
"""

JOBS = r'''
local function find(ctx, name)
  return ctx.db:query("counters"):withIndex("by_name", function(q) return q:eq("name", name) end):first()
end
local M = {}
M.bump = herald.internalMutation{args = {name = v.string()}, handler = function(ctx, a)
  local c = find(ctx, a.name)
  if c then ctx.db:patch(c._id, {n = c.n + 1}) else ctx.db:insert("counters", {name = a.name, n = 1}) end
end}
M.later = herald.mutation{args = {name = v.string(), ms = v.number()}, handler = function(ctx, a)
  return ctx.scheduler:runAfter(a.ms, "jobs:bump", {name = a.name})
end}
M.at = herald.mutation{args = {name = v.string(), t = v.number()}, handler = function(ctx, a)
  return ctx.scheduler:runAt(a.t, "jobs.js:bump", {name = a.name})
end}
M.laterThenFail = herald.mutation{args = {name = v.string()}, handler = function(ctx, a)
  ctx.scheduler:runAfter(0, "jobs:bump", {name = a.name})
  error("changed my mind")
end}
M.cancel = herald.mutation{args = {id = v.id("_scheduled_functions")}, handler = function(ctx, a)
  ctx.scheduler:cancel(a.id)
end}
M.boom = herald.internalMutation{handler = function(ctx)
  ctx.db:insert("counters", {name = "boom", n = 1})
  error("exploded")
end}
M.laterBoom = herald.mutation{handler = function(ctx) return ctx.scheduler:runAfter(0, "jobs:boom", {}) end}
M.scheduleQuery = herald.mutation{handler = function(ctx) return ctx.scheduler:runAfter(0, "jobs:get", {name = "x"}) end}
M.badTime = herald.mutation{handler = function(ctx) return ctx.scheduler:runAfter(-5, "jobs:bump", {name = "t"}) end}
M.badArgs = herald.mutation{handler = function(ctx) return ctx.scheduler:runAfter(0, "jobs:bump", 7) end}
M.scheduleNothing = herald.mutation{handler = function(ctx) return ctx.scheduler:runAfter(0, "jobs:nothing", {}) end}
M.get = herald.query{args = {name = v.string()}, handler = function(ctx, a)
  local c = find(ctx, a.name)
  return c and c.n or 0
end}
M.run = herald.query{args = {id = v.id("_scheduled_functions")}, handler = function(ctx, a)
  return ctx.db.system:get(a.id)
end}
return M
'''


async def live_state(server, run_id, want):
    """Subscribes to the run's row and waits until its state is `want`."""
    async with server.ws() as ws:
        await ws.send(json.dumps({"type": "sub", "id": "r", "path": "jobs:run", "args": {"id": run_id}}))
        seen = []
        end = time.time() + 5
        while time.time() < end:
            try:
                m = json.loads(await asyncio.wait_for(ws.recv(), 1))
            except asyncio.TimeoutError:
                continue
            if m.get("type") == "result":
                seen.append(m["value"]["state"]["kind"])
            elif m.get("type") == "update":
                seen.append("update")
            if want in seen or (seen and seen[-1] == "update"):
                return seen
        return seen


def main():
    work = tempfile.mkdtemp(prefix="herald-sched-")
    app = write_app(work, SCHEMA, {"jobs": JOBS})
    data = os.path.join(work, "data")
    server = Server(HERALD, app, data)
    try:
        t0 = time.time()
        rid = value(server, "mutation", "jobs:later", {"name": "a", "ms": 600})
        seen = asyncio.run(live_state(server, rid, "success"))
        check(seen and seen[0] == "pending", f"the run is pending first: {seen}")
        check(wait_for(lambda: value(server, "query", "jobs:get", {"name": "a"}) == 1),
              "runAfter: the mutation ran")
        check(time.time() - t0 >= 0.6, "not before its time")
        run = value(server, "query", "jobs:run", {"id": rid})
        check(run["state"]["kind"] == "success" and run["completedTime"] >= run["scheduledTime"],
              f"its row says success: {run}")
        check(seen[-1] in ("update", "success"), f"a live query saw the state change: {seen}")
        time.sleep(0.6)
        check(value(server, "query", "jobs:get", {"name": "a"}) == 1, "it ran exactly once")

        value(server, "mutation", "jobs:at", {"name": "at", "t": time.time() * 1000 + 200})
        check(wait_for(lambda: value(server, "query", "jobs:get", {"name": "at"}) == 1),
              "runAt (and a module.js path) runs")

        status, _ = call(server, "mutation", "jobs:laterThenFail", {"name": "b"})
        time.sleep(0.8)
        check(status != 200 and value(server, "query", "jobs:get", {"name": "b"}) == 0,
              "a mutation that fails after scheduling schedules nothing")

        cid = value(server, "mutation", "jobs:later", {"name": "c", "ms": 800})
        value(server, "mutation", "jobs:cancel", {"id": cid})
        time.sleep(1.2)
        check(value(server, "query", "jobs:get", {"name": "c"}) == 0, "a cancelled run does not run")
        check(value(server, "query", "jobs:run", {"id": cid})["state"]["kind"] == "canceled",
              "its row says canceled")
        value(server, "mutation", "jobs:cancel", {"id": rid})
        check(value(server, "query", "jobs:run", {"id": rid})["state"]["kind"] == "success",
              "cancelling a finished run changes nothing")

        bid = value(server, "mutation", "jobs:laterBoom")
        check(wait_for(lambda: value(server, "query", "jobs:run", {"id": bid})["state"]["kind"] == "failed"),
              "a failing scheduled function's row says failed")
        run = value(server, "query", "jobs:run", {"id": bid})
        check("exploded" in run["state"].get("error", ""), f"with its error: {run}")
        check(value(server, "query", "jobs:get", {"name": "boom"}) == 0, "and its writes are rolled back")

        status, reply = call(server, "mutation", "jobs:scheduleQuery")
        check(status != 200 and "mutations" in reply.get("errorMessage", ""),
              f"scheduling a query is refused: {status} {reply}")
        status, reply = call(server, "mutation", "jobs:scheduleNothing")
        check(status != 200, f"scheduling an unknown function is refused: {status} {reply}")
        status, reply = call(server, "mutation", "jobs:badTime")
        check(status != 200 and "milliseconds" in reply.get("errorMessage", ""),
              f"a negative delay is refused: {status} {reply}")
        status, reply = call(server, "mutation", "jobs:badArgs")
        check(status != 200 and "args" in reply.get("errorMessage", ""),
              f"args that are not a table are refused: {status} {reply}")

        # Due while the server is down: runs once after it starts again.
        did = value(server, "mutation", "jobs:later", {"name": "d", "ms": 1500})
    finally:
        code = server.stop()
        check(code == 0, f"server stops cleanly ({code})")
    time.sleep(1.6)
    server = Server(HERALD, app, data)
    try:
        check(wait_for(lambda: value(server, "query", "jobs:get", {"name": "d"}) == 1),
              "a run due while the server was down runs after the start")
        time.sleep(0.6)
        check(value(server, "query", "jobs:get", {"name": "d"}) == 1
              and value(server, "query", "jobs:run", {"id": did})["state"]["kind"] == "success",
              "once")
    finally:
        server.stop()
    # Finished runs are deleted after --scheduled-retention; pending ones stay.
    server = Server(HERALD, app, data, extra=["--scheduled-retention", "2"])
    try:
        old = value(server, "query", "jobs:run", {"id": did})
        check(old is not None, "a run finished before the start is there")
        keep = value(server, "mutation", "jobs:later", {"name": "k", "ms": 60000})
        check(wait_for(lambda: value(server, "query", "jobs:run", {"id": did}) is None, 10),
              "a finished run older than the retention is deleted")
        check(value(server, "query", "jobs:run", {"id": keep})["state"]["kind"] == "pending",
              "a pending run is kept")
    finally:
        server.stop()
    shutil.rmtree(work, ignore_errors=True)
    return finish("scheduler")


if __name__ == "__main__":
    sys.exit(main())
