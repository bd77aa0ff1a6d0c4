"""Black-box tests of actions, fetch, scheduled actions, crons and HTTP
routes in `herald serve` (docs/functions.md, "Actions", "fetch", "Crons",
"HTTP routes"), against a small HTTP server of the test's own on loopback:

- an action runs over HTTP /api/action and the native protocol; it reads
  with ctx.runQuery, writes with ctx.runMutation (each its own
  transaction, internal functions too), calls ctx.runAction;
- fetch: GET and POST reach the loopback server (opened with
  --allow-fetch) with method, headers and body; status, headers and body
  come back; a private address is refused, also behind a redirect;
- many actions waiting on a slow server at once do not hold up queries
  and mutations, and overlap (the server sees them at the same time);
- an action that throws, runs out of instructions or of its wall-clock
  time, yields at its top level, or calls fetch from a query fails with
  a clear error, and the server goes on;
- a mutation schedules an action: its row goes pending, inProgress,
  success, and the action's fetch arrives exactly once; an action
  schedules a mutation; a failing scheduled action's row says failed;
- an action left inProgress by a killed server is marked failed at the
  next start, never run again;
- a cron declared in functions/crons.lua runs on its interval, and a cron
  missed while the server was down runs once at start;
- routes of functions/http.lua answer under /http with the handler's
  status, headers and body; a route's handler reads the method, path,
  query, headers and body; no route: 404; wrong method: 405.

Run as: /usr/bin/python3 test_actions.py <herald> <source root>
"""
import asyncio
import http.server as httpserver
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_testlib import (Server, call_value as call, check, finish, value,  # noqa: E402
                            wait_for, write_app)

HERALD, ROOT = sys.argv[1], sys.argv[2]

SCHEMA = """import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";
export default defineSchema({
  counters: defineTable({ name: v.string(), n: v.number() }).index("by_name", ["name"]),
  hooks: defineTable({ body: v.string(), token: v.optional(v.string()) }),
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
  return a.name
end}
M.touch = herald.mutation{args = {name = v.string()}, handler = function(ctx, a)
  return ctx:runMutation("jobs:bump", a)
end}
M.get = herald.query{args = {name = v.string()}, handler = function(ctx, a)
  local c = find(ctx, a.name)
  return c and c.n or 0
end}
M.run = herald.query{args = {id = v.id("_scheduled_functions")}, handler = function(ctx, a)
  return ctx.db.system:get(a.id)
end}
M.hooks = herald.query{handler = function(ctx) return ctx.db:query("hooks"):collect() end}
M.addHook = herald.internalMutation{args = {body = v.string(), token = v.optional(v.string())},
  handler = function(ctx, a) ctx.db:insert("hooks", {body = a.body, token = a.token}) end}
M.notifyLater = herald.mutation{args = {url = v.string()}, handler = function(ctx, a)
  return ctx.scheduler:runAfter(0, "actions:notify", {url = a.url})
end}
M.failLater = herald.mutation{handler = function(ctx) return ctx.scheduler:runAfter(0, "actions:boom", {}) end}
M.slowLater = herald.mutation{args = {url = v.string()}, handler = function(ctx, a)
  return ctx.scheduler:runAfter(0, "actions:fetchStatus", {url = a.url})
end}
M.fetchInQuery = herald.query{handler = function(ctx) return fetch("http://127.0.0.1:1/") end}
return M
'''

ACTIONS = r'''
local M = {}
M.hello = herald.action{args = {name = v.string()}, handler = function(ctx, a)
  return "hello " .. a.name
end}
M.whoami = herald.action{handler = function(ctx) return ctx.auth:isAdmin() end}
M.clock = herald.action{args = {url = v.string()}, handler = function(ctx, a)
  local t0, s0 = ctx:clock(), os.time()
  fetch(a.url)
  return {started = ctx.now, before = t0, after = ctx:clock(), moved = os.time() >= s0}
end}
M.get = herald.action{args = {url = v.string()}, handler = function(ctx, a)
  local r = fetch(a.url, {headers = {["X-Test"] = "yes"}})
  return {status = r.status, ok = r.ok, body = r:text(), type = r.headers["content-type"]}
end}
M.post = herald.action{args = {url = v.string()}, handler = function(ctx, a)
  local r = fetch(a.url, {method = "POST", body = {n = 41}})
  return r:json()
end}
M.fetchStatus = herald.internalAction{args = {url = v.string()}, handler = function(ctx, a)
  return fetch(a.url).status
end}
M.slow = herald.action{args = {url = v.string()}, handler = function(ctx, a)
  return fetch(a.url).status
end}
M.rw = herald.action{args = {name = v.string()}, handler = function(ctx, a)
  local before = ctx:runQuery("jobs:get", {name = a.name})
  ctx:runMutation("jobs:bump", {name = a.name})
  ctx.runMutation("jobs:bump", {name = a.name})
  return {before = before, after = ctx:runQuery("jobs:get", {name = a.name})}
end}
M.wrongReturn = herald.internalAction{returns = v.number(), handler = function(ctx) return "text" end}
M.nestedWrong = herald.action{handler = function(ctx) return ctx:runAction("actions.js:wrongReturn", {}) end}
M.nested = herald.action{handler = function(ctx)
  return ctx:runAction("actions:hello", {name = "inner"})
end}
M.boom = herald.internalAction{handler = function(ctx) error("the action failed on purpose") end}
M.throw = herald.action{handler = function(ctx) error("the action failed on purpose") end}
M.spin = herald.action{handler = function(ctx) while true do end end}
M.yields = herald.action{handler = function(ctx) coroutine.yield() end}
M.refused = herald.action{handler = function(ctx) return fetch("http://10.255.255.1/").status end}
M.catchRefused = herald.action{handler = function(ctx)
  local ok, err = pcall(fetch, "http://10.255.255.1/")
  return {ok = ok, message = tostring(err)}
end}
M.schedule = herald.action{args = {name = v.string()}, handler = function(ctx, a)
  return ctx.scheduler:runAfter(0, "jobs:bump", {name = a.name})
end}
M.notify = herald.internalAction{args = {url = v.string()}, handler = function(ctx, a)
  local r = fetch(a.url, {method = "POST", body = {event = "done"}})
  if r.status ~= 200 then error("the callback answered " .. r.status) end
end}
M.store = herald.action{args = {url = v.string()}, handler = function(ctx, a)
  local r = fetch(a.url)
  local id = ctx.storage:store(r:bytes(), {contentType = "text/plain"})
  return {id = id, url = ctx.storage:getUrl(id), meta = ctx.storage:getMetadata(id)}
end}
M.scheduleNothing = herald.action{handler = function(ctx)
  return ctx.scheduler:runAfter(0, "jobs:nothing", {})
end}
M.scheduleQuery = herald.action{handler = function(ctx)
  return ctx.scheduler:runAfter(0, "jobs:get", {name = "q"})
end}
M.writeFails = herald.action{handler = function(ctx)
  local ok, err = pcall(ctx.runMutation, ctx, "jobs:bump", {name = 5})
  return {ok = ok, message = tostring(err)}
end}
return M
'''

CRONS = r'''
local crons = herald.cronJobs()
crons:interval("every second", {seconds = 1}, "jobs:bump", {name = "cron"})
crons:cron("hourly", "0 * * * *", "jobs:bump", {name = "hourly"})
return crons
'''

ROUTES = r'''
local http = herald.httpRouter()
http:route{path = "/hook", method = "POST", headers = {"X-Hook-Token"},
  handler = herald.httpAction(function(ctx, req)
    local token = req.headers["x-hook-token"]
    ctx:runMutation("jobs:addHook", {body = req:text(), token = token})
    return {status = 201, headers = {["X-Seen"] = req.method .. " " .. req.path},
            body = {received = #req:text(), q = req.query.q}}
  end)}
http:route{pathPrefix = "/files/", method = "GET", handler = herald.httpAction(function(ctx, req)
  return {status = 200, headers = {["Content-Type"] = "text/plain", ["Access-Control-Allow-Origin"] = "*"},
          body = "file " .. req.path}
end)}
http:route{path = "/fail", method = "GET", handler = herald.httpAction(function(ctx, req)
  error("route handler failed")
end)}
return http
'''


class Loopback(httpserver.ThreadingHTTPServer):
    """The test's HTTP server: records every request, answers by path."""
    daemon_threads = True

    def __init__(self):
        self.requests = []
        self.concurrent = 0
        self.max_concurrent = 0
        self.lock = threading.Lock()
        self.release = threading.Event()
        super().__init__(("127.0.0.1", 0), Handler)

    def handle_error(self, request, client_address):
        pass  # a client that gave up (an action past its time) is no failure of the test's


class Handler(httpserver.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def _serve(self):
        srv = self.server
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        with srv.lock:
            srv.requests.append((self.command, self.path, dict(self.headers), body))
            srv.concurrent += 1
            srv.max_concurrent = max(srv.max_concurrent, srv.concurrent)
        try:
            if self.path.startswith("/slow"):
                srv.release.wait(20)
            if self.path.startswith("/redirect"):
                self.send_response(302)
                self.send_header("Location", "http://10.255.255.1/secret")
                self.end_headers()
                return
            if self.path.startswith("/big"):
                out = b"x" * (17 << 20)  # over fetch's 16 MiB
                self.send_response(200)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)
                return
            if self.path.startswith("/fail"):
                self.send_response(500)
                self.end_headers()
                return
            if self.command == "POST":
                out = json.dumps({"got": json.loads(body or b"null"),
                                  "type": self.headers.get("Content-Type")}).encode()
                ctype = "application/json"
            else:
                out = ("seen " + self.headers.get("X-Test", "")).encode()
                ctype = "text/plain"
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
        finally:
            with srv.lock:
                srv.concurrent -= 1

    do_GET = do_POST = _serve


def route(server, method, path, body=None, headers=None):
    req = urllib.request.Request(server.url(path), data=body, method=method)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


async def ws_action(server):
    async with server.ws() as ws:
        await ws.send(json.dumps({"type": "action", "id": "a1", "path": "actions:hello",
                                  "args": {"name": "ws"}}))
        await ws.send(json.dumps({"type": "action", "id": "a2", "path": "jobs:touch",
                                  "args": {"name": "x"}}))
        got = {}
        while len(got) < 2:
            m = json.loads(await asyncio.wait_for(ws.recv(), 10))
            got[m.get("id")] = m
        return got


async def ws_flood(server, url, n):
    """Sends n slow actions on one connection; returns the first answer that came."""
    async with server.ws() as ws:
        for i in range(n):
            await ws.send(json.dumps({"type": "action", "id": f"f{i}", "path": "actions:slow",
                                      "args": {"url": url}}))
        return json.loads(await asyncio.wait_for(ws.recv(), 10))


def run_state(server, rid):
    row = value(server, "query", "jobs:run", {"id": rid})
    return row and row["state"]["kind"]


def main():
    work = tempfile.mkdtemp(prefix="herald-actions-")
    app = write_app(work, SCHEMA, {"jobs": JOBS, "actions": ACTIONS, "crons": CRONS, "http": ROUTES})
    data = os.path.join(work, "data")
    lb = Loopback()
    threading.Thread(target=lb.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{lb.server_address[1]}"
    extra = ["--allow-fetch", "127.0.0.1", "--action-timeout", "3"]
    server = Server(HERALD, app, data, extra=extra)
    try:
        # ---- calling actions
        check(value(server, "action", "actions:hello", {"name": "http"}) == "hello http",
              "an action runs over /api/action")
        got = asyncio.run(ws_action(server))
        check(got["a1"].get("type") == "result" and got["a1"].get("value") == "hello ws",
              f"an action runs over the native protocol: {got['a1']}")
        check(got["a2"].get("type") == "error" and "mutation" in got["a2"].get("message", ""),
              f"a mutation called as an action is refused: {got['a2']}")
        status, reply = call(server, "mutation", "actions:hello", {"name": "m"})
        check(status != 200 and "is an action; call it as an action" in json.dumps(reply),
              f"an action called as a mutation is refused, saying what it is: {status} {reply}")
        status, reply = call(server, "action", "actions:boom")
        check(status != 200 and "no public function" in json.dumps(reply),
              f"an internal action cannot be called by a client: {status} {reply}")
        check(value(server, "action", "actions:whoami") is False, "a client's action is no admin")
        check(value(server, "action", "actions:whoami", token=server.key) is True,
              "the admin's action is")

        # ---- reads and writes, each their own transaction
        r = value(server, "action", "actions:rw", {"name": "rw"})
        check(r == {"before": 0, "after": 2}, f"runQuery/runMutation: {r}")
        check(value(server, "action", "actions:nested") == "hello inner", "runAction")
        status, reply = call(server, "action", "actions:nestedWrong")
        check(status != 200 and "return value" in json.dumps(reply),
              f"runAction checks the callee's return value, whatever the path's spelling: {reply}")
        r = value(server, "action", "actions:writeFails")
        check(r["ok"] is False and "name" in r["message"],
              f"a mutation the action calls fails with its error: {r}")

        # ---- fetch
        r = value(server, "action", "actions:get", {"url": base + "/hello"})
        check(r == {"status": 200, "ok": True, "body": "seen yes", "type": "text/plain"},
              f"fetch GET: {r}")
        check(lb.requests[-1][2].get("X-Test") == "yes", "the request's headers reached the server")
        r = value(server, "action", "actions:clock", {"url": base + "/hello"})
        check(r["started"] <= r["before"] <= r["after"] and r["moved"],
              f"an action's clock moves (ctx.now is its start): {r}")
        r = value(server, "action", "actions:post", {"url": base + "/echo"})
        check(r == {"got": {"n": 41}, "type": "application/json"}, f"fetch POST with a JSON body: {r}")
        status, reply = call(server, "action", "actions:refused")
        check(status != 200 and "private" in json.dumps(reply),
              f"a private address is refused: {status} {reply}")
        r = value(server, "action", "actions:catchRefused")
        check(r["ok"] is False and "allow-fetch" in r["message"], f"the refusal can be caught: {r}")
        status, reply = call(server, "action", "actions:get", {"url": base + "/redirect"})
        check(status != 200 and "10.255.255.1" in json.dumps(reply),
              f"a redirect to a private address is refused: {status} {reply}")
        r = value(server, "action", "actions:store", {"url": base + "/file"})
        check(r["meta"]["size"] == 5 and r["meta"]["contentType"] == "text/plain",
              f"ctx.storage:store keeps what an action fetched: {r}")
        with urllib.request.urlopen(r["url"], timeout=10) as f:
            check(f.read() == b"seen ", "its file is served at its URL")
        status, reply = call(server, "query", "jobs:fetchInQuery")
        check(status != 200 and "only available in actions" in json.dumps(reply),
              f"fetch in a query is refused: {status} {reply}")

        # ---- many actions waiting on a slow server: the pool is not held, nothing else waits
        results = []

        def slow_call():
            results.append(call(server, "action", "actions:slow", {"url": base + "/slow"}))

        threads = [threading.Thread(target=slow_call) for _ in range(12)]
        for t in threads:
            t.start()
        check(wait_for(lambda: lb.max_concurrent >= 12, 10),
              f"12 actions wait on fetch at once (2 pool threads): {lb.max_concurrent}")
        check(value(server, "mutation", "jobs:touch", {"name": "meanwhile"}) == "meanwhile",
              "a mutation runs meanwhile")
        check(value(server, "query", "jobs:get", {"name": "meanwhile"}) == 1,
              "and a query sees it, while the actions wait")
        check(value(server, "action", "actions:hello", {"name": "b"}) == "hello b",
              "another action runs meanwhile")
        first = asyncio.run(ws_flood(server, base + "/slow", 33))
        check(first.get("id") == "f32" and first.get("code") == "Busy",
              f"one connection runs 32 actions at once, the 33rd is refused: {first}")
        lb.release.set()
        for t in threads:
            t.join(30)
        check(len(results) == 12 and all(s == 200 and v == 200 for s, v in results),
              f"the waiting actions all end: {results[:2]}")
        lb.release.clear()

        # ---- failures: each a clear error, and the server goes on
        for path, args, expect, what in [
                ("actions:throw", {}, "failed on purpose", "an action that throws"),
                ("actions:spin", {}, "instruction limit", "an action that spins"),
                ("actions:yields", {}, "yield", "coroutine.yield at an action's top"),
                ("actions:get", {"url": base + "/big"}, "larger than", "a response over 16 MiB"),
                ("actions:scheduleNothing", {}, "no function", "scheduling an unknown function"),
                ("actions:scheduleQuery", {}, "a query has no effect", "scheduling a query")]:
            status, reply = call(server, "action", path, args)
            check(status != 200 and expect in json.dumps(reply), f"{what} fails: {status} {reply}")
        t0 = time.time()
        status, reply = call(server, "action", "actions:slow", {"url": base + "/slow"})
        check(status != 200 and ("time" in json.dumps(reply)),
              f"an action past --action-timeout fails: {status} {reply}")
        check(time.time() - t0 < 15, "and ends near its limit, not the server's")
        lb.release.set()
        check(value(server, "action", "actions:hello", {"name": "c"}) == "hello c",
              "the server goes on")

        # ---- scheduled actions
        n0 = len([q for q in lb.requests if q[1] == "/callback"])
        rid = value(server, "mutation", "jobs:notifyLater", {"url": base + "/callback"})
        check(wait_for(lambda: run_state(server, rid) == "success"),
              f"a scheduled action's row ends success: {run_state(server, rid)}")
        time.sleep(0.5)
        calls = [q for q in lb.requests if q[1] == "/callback"]
        check(len(calls) - n0 == 1 and json.loads(calls[-1][3]) == {"event": "done"},
              f"its callback arrived exactly once with its data: {len(calls) - n0}")
        rid = value(server, "mutation", "jobs:failLater")
        check(wait_for(lambda: run_state(server, rid) == "failed"), "a failing scheduled action: failed")
        row = value(server, "query", "jobs:run", {"id": rid})
        check("failed on purpose" in row["state"].get("error", ""), f"with its error: {row}")
        sid = value(server, "action", "actions:schedule", {"name": "from-action"})
        check(wait_for(lambda: value(server, "query", "jobs:get", {"name": "from-action"}) == 1),
              "an action schedules a mutation")
        check(wait_for(lambda: run_state(server, sid) == "success"), "whose row ends success")

        # ---- routes
        status, headers, body = route(server, "POST", "/http/hook?q=7", b"payload",
                                      {"X-Hook-Token": "t0k", "Content-Type": "text/plain"})
        check(status == 201 and json.loads(body) == {"received": 7, "q": "7"},
              f"a POST route: {status} {body}")
        check(headers.get("X-Seen") == "POST /hook" and
              headers.get("Content-Type", "").startswith("application/json"),
              f"with the handler's headers: {headers}")
        hooks = value(server, "query", "jobs:hooks")
        check(len(hooks) == 1 and hooks[0]["body"] == "payload" and hooks[0]["token"] == "t0k",
              f"its handler wrote, and read a header the route names: {hooks}")
        status, headers, body = route(server, "GET", "/http/files/a/b.txt")
        check(status == 200 and body == b"file /files/a/b.txt" and
              headers.get("Access-Control-Allow-Origin") == "*", f"a prefix route: {status} {body}")
        status, _, body = route(server, "GET", "/http/nothing")
        check(status == 404, f"no route: 404 ({status})")
        status, _, body = route(server, "GET", "/http/hook")
        check(status == 405, f"another method: 405 ({status})")
        status, _, body = route(server, "GET", "/http/fail")
        check(status == 500 and b"route handler failed" in body, f"a failing handler: 500 {body}")

        # ---- crons
        check(wait_for(lambda: value(server, "query", "jobs:get", {"name": "cron"}) >= 2, 10),
              "an interval cron runs")

        # ---- an action cut short by a crash is marked failed at the next start
        lb.release.clear()  # before scheduling: the action must be waiting when the server dies
        rid = value(server, "mutation", "jobs:slowLater", {"url": base + "/slow"})
        check(wait_for(lambda: run_state(server, rid) == "inProgress"), "a scheduled action runs")
        server.proc.send_signal(signal.SIGKILL)
        server.stop()
        cron_before = None
        server = Server(HERALD, app, data, extra=extra)
        check(wait_for(lambda: run_state(server, rid) == "failed"),
              f"after a crash it is failed, not run again: {run_state(server, rid)}")
        row = value(server, "query", "jobs:run", {"id": rid})
        check("interrupted" in row["state"].get("error", ""), f"saying why: {row}")
        slow_calls = [q for q in lb.requests if q[1] == "/slow"]
        time.sleep(1)
        check(len([q for q in lb.requests if q[1] == "/slow"]) == len(slow_calls),
              "and it is never fetched again")
        lb.release.set()

        # ---- a missed cron runs once at start
        before = value(server, "query", "jobs:get", {"name": "cron"})
        server.stop()
        time.sleep(3.5)
        server = Server(HERALD, app, data, extra=extra)
        time.sleep(0.6)
        after = value(server, "query", "jobs:get", {"name": "cron"})
        check(after == before + 1, f"the runs missed while down come to one at start: {before} -> {after}")
        del cron_before
    finally:
        lb.release.set()
        server.stop()
        lb.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    finish("test_actions")


if __name__ == "__main__":
    main()
