"""Black-box tests of server functions in `herald serve`: calls over the
native protocol and HTTP, live subscriptions to query functions, internal
functions, structured errors, idempotent retries, hostile functions
against a live server, reloads (SIGHUP and the reload message) that keep
connections and refuse broken files, JWT sign-in with re-authentication,
isolation between calls (what one caller's function changes, another's
never sees) and error messages without file and line for callers who are
not the admin (unless --dev).

Run as: /usr/bin/python3 test_functions.py <herald> <source root>
"""
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_client import Client  # noqa: E402
from herald_testlib import (Issuer, Server, app_with_issuers, call, check,  # noqa: E402
                            finish, http)

HERALD, ROOT = sys.argv[1], sys.argv[2]
JOBS = os.path.join(ROOT, "examples", "twitch-jobs")

EXTRA = r'''
local M = {}
M.me = herald.query{handler = function(ctx)
  local me = ctx.auth:getUserIdentity()
  if not me then return herald.null end
  return {subject = me.subject, tokenIdentifier = me.tokenIdentifier, email = me.email or herald.null}
end}
M.spin = herald.query{handler = function() while true do end end}
M.eat = herald.mutation{handler = function()
  local t = {} for i = 1, 1e9 do t[i] = string.rep("x", 4096) .. i end end}
M.secret = herald.internalQuery{handler = function() return "internal only" end}
M.bump = herald.mutation{args = {twitchId = v.string()}, handler = function(ctx, a)
  local video = ctx.db:query("videos"):withIndex("by_twitch_id", function(q)
    return q:eq("twitchId", a.twitchId) end):unique()
  ctx.db:patch(video._id, {retryCount = (video.retryCount or 0) + 1})
  return (video.retryCount or 0) + 1
end}
M.refuse = herald.mutation{handler = function(ctx)
  ctx.db:insert("videos", {twitchId = "never", title = "never", status = "Queued"})
  herald.error{code = "NOPE", message = "refused on purpose", detail = {n = 1}}
end}
local function poison()
  pcall(function() string.upper = function() return "pwned" end end)
  pcall(function() getmetatable("").__index = {upper = function() return "pwned" end} end)
  pcall(function() table.insert = nil end)
  pcall(function() herald.query = nil end)
  pcall(function() M.probe = nil end)
  leakedGlobal = "yes"
  pcall(rawset, _G, "herald", nil)
  return "done"
end
local function probe()
  return {upper = string.upper("a"), method = ("b"):upper(), herald = type(herald),
          query = type(herald and herald.query), insert = type(table.insert),
          probe = type(M.probe), leaked = leakedGlobal or herald.null}
end
M.poison = herald.query{handler = poison}
M.poisonMutation = herald.mutation{handler = poison}
M.probe = herald.query{handler = probe}
M.probeMutation = herald.mutation{handler = probe}
M.boom = herald.mutation{handler = function() error("boom") end}
M.boomQuery = herald.query{handler = function() error("boom") end}
return M
'''

UNTOUCHED = {"upper": "A", "method": "B", "herald": "table", "query": "function",
             "insert": "function", "probe": "table", "leaked": None}
LOCATED_BOOM = re.compile(r"^functions/extra\.lua:\d+: boom$")


def seed(data, app):
    out = subprocess.run([HERALD, "--data", data, "--app", app, "import", "--table", "videos",
                          os.path.join(JOBS, "seed", "videos.jsonl")],
                         capture_output=True, text=True)
    check(out.returncode == 0, "seed import: " + out.stderr)


def write(app, name, text):
    with open(os.path.join(app, "functions", name), "w") as f:
        f.write(text)


async def live_calls(srv):
    async with srv.ws() as ws, srv.ws() as ws_anon:
        c = Client(ws)
        anon = Client(ws_anon)
        # The job-progress mutations take the worker's admin key.
        r = await c.request({"type": "auth", "token": srv.key})
        check(r["type"] == "ack", f"admin sign-in: {r}")
        r = await anon.request({"type": "mutate", "path": "videos:updateJobProgress",
                                "args": {"twitchId": "1900007919", "jobId": "job-0002"}})
        check(r["type"] == "error" and r["code"] == "FunctionError" and
              r["data"]["code"] == "FORBIDDEN", f"progress without the worker key: {r}")
        c.pending_subs.add("job")
        r = await c.request({"type": "sub", "id": "job", "path": "videos:getJobById",
                             "args": {"jobId": "job-0002"}})
        check(r["type"] == "result" and r["value"]["progressPercentage"] == 12,
              f"function subscription's first result: {r}")
        # A worker pushes progress over HTTP: the subscriber sees it without asking.
        status, reply = call(srv, "mutation", "videos:updateJobProgress",
                             {"twitchId": "1900007919", "jobId": "job-0002",
                              "progressPercentage": 55, "currentStage": "Transcribing"},
                             token=srv.key)
        check(status == 200 and reply["status"] == "success", f"HTTP mutation: {status} {reply}")
        while c.results["job"].get("progressPercentage") != 55:
            await c.pump(10)
        check(c.results["job"]["currentStage"] == "Transcribing", "update applied whole")
        # A mutation over the WebSocket: its ack comes after the update it caused.
        seen = []
        c.on_change = lambda sid, value, version: seen.append(value.get("progressPercentage"))
        r = await c.request({"type": "mutate", "path": "videos.js:updateJobProgress",
                             "args": {"twitchId": "1900007919", "jobId": "job-0002",
                                      "progressPercentage": 60}})
        check(r["type"] == "ack" and seen and seen[-1] == 60,
              f"ack after its update (read your writes): {r} {seen}")
        c.on_change = None
        # Structured errors carry their data; the refused mutation wrote nothing.
        r = await c.request({"type": "mutate", "path": "extra:refuse", "args": {}})
        check(r["type"] == "error" and r["code"] == "FunctionError" and
              r["message"] == "refused on purpose" and r["data"]["code"] == "NOPE" and
              r["data"]["detail"] == {"n": 1}, f"structured error: {r}")
        status, reply = call(srv, "query", "videos:list", {})
        check(status == 200 and all(v["twitchId"] != "never" for v in reply["value"]),
              "a failed mutation keeps none of its writes")
        status, reply = call(srv, "mutation", "extra:refuse")
        check(status == 400 and reply.get("errorData", {}).get("code") == "NOPE",
              f"HTTP errorData: {status} {reply}")
        # Wrong kinds, unknown and internal functions.
        r = await c.request({"type": "sub", "id": "bad", "path": "videos:completeJob", "args": {}})
        check(r["type"] == "error" and r["code"] == "InvalidArgument", f"sub to a mutation: {r}")
        r = await c.request({"type": "query", "path": "videos:nothing", "args": {}})
        check(r["type"] == "error" and r["code"] == "NotFound", f"unknown function: {r}")
        r = await anon.request({"type": "query", "path": "extra:secret", "args": {}})
        check(r["type"] == "error" and r["code"] == "NotFound", f"internal, anonymous: {r}")
        r = await c.request({"type": "query", "path": "extra:secret", "args": {}})
        check(r["type"] == "result" and r["value"] == "internal only", f"internal, admin: {r}")
        status, reply = call(srv, "query", "extra:secret", {}, token=srv.key)
        check(status == 200 and reply["value"] == "internal only", f"internal, admin: {reply}")
        r = await c.request({"type": "query", "path": "videos:getJobById", "args": {"jobId": 7}})
        check(r["type"] == "error" and r["code"] == "ValidationError" and "jobId" in r["message"],
              f"bad argument named: {r}")
        r = await c.request({"type": "mutate", "path": 12, "args": {}})
        check(r["type"] == "error" and r["code"] == "InvalidArgument", f"path not a string: {r}")
        r = await anon.request({"type": "mutate", "ops": []})
        check(r["type"] == "error" and r["code"] == "Unauthorized", f"raw ops anonymous: {r}")
        # Idempotent retries of a function mutation.
        body = {"path": "extra:bump", "args": {"twitchId": "1900000000"}, "idempotencyKey": "k-1"}
        first = http(srv, "mutation", body)
        again = http(srv, "mutation", body)
        check(first == again and first[1]["value"] == 1, f"idempotent retry: {first} {again}")
        status, reply = call(srv, "mutation", "extra:bump", {"twitchId": "1900000000"})
        check(reply.get("value") == 2, f"applied once: {reply}")


async def hostile(srv):
    """Runaway functions end with LimitExceeded; another client keeps its live updates."""
    async with srv.ws() as ws, srv.ws() as ws2:
        watcher = Client(ws2)
        watcher.pending_subs.add("w")
        await watcher.request({"type": "sub", "id": "w", "path": "videos:getJobById",
                               "args": {"jobId": "job-0003"}})
        c = Client(ws)
        await c.request({"type": "auth", "token": srv.key})
        r = await c.request({"type": "query", "path": "extra:spin", "args": {}}, timeout=120)
        check(r["type"] == "error" and r["code"] == "LimitExceeded" and
              "instruction" in r["message"], f"endless loop: {r}")
        r = await c.request({"type": "mutate", "path": "extra:eat", "args": {}}, timeout=120)
        check(r["type"] == "error" and r["code"] == "LimitExceeded" and "memory" in r["message"],
              f"memory hog: {r}")
        r = await c.request({"type": "mutate", "path": "videos:updateJobProgress",
                             "args": {"twitchId": "1900015838", "jobId": "job-0003",
                                      "progressPercentage": 33}})
        check(r["type"] == "ack", f"the writer still runs functions: {r}")
        while watcher.results["w"].get("progressPercentage") != 33:
            await watcher.pump(10)
        check(watcher.results["w"]["jobId"] == "job-0003", "the watcher's job updated live")


async def isolation(srv):
    """One call cannot change what another call sees (SPEC §3), on the
    event loop's runtime (queries) and on the writer's (mutations)."""
    async with srv.ws() as ws_a, srv.ws() as ws_b:
        attacker, other = Client(ws_a), Client(ws_b)
        r = await attacker.request({"type": "query", "path": "extra:poison", "args": {}})
        check(r["type"] == "result" and r["value"] == "done", f"poisoning query ran: {r}")
        r = await other.request({"type": "query", "path": "extra:probe", "args": {}})
        check(r["type"] == "result" and r["value"] == UNTOUCHED,
              f"another client's query sees the real libraries and herald: {r}")
        other.pending_subs.add("p")
        r = await other.request({"type": "sub", "id": "p", "path": "extra:probe", "args": {}})
        check(r["type"] == "result" and r["value"] == UNTOUCHED, f"subscription: {r}")
        r = await attacker.request({"type": "mutate", "path": "extra:poisonMutation", "args": {}})
        check(r["type"] == "ack", f"poisoning mutation ran: {r}")
    status, reply = call(srv, "mutation", "extra:probeMutation")
    check(status == 200 and reply["value"] == UNTOUCHED,
          f"the writer's next mutation sees the real libraries and herald: {status} {reply}")
    status, reply = call(srv, "query", "extra:probe")
    check(status == 200 and reply["value"] == UNTOUCHED, f"HTTP query after both: {reply}")


async def error_locations(srv):
    """A FunctionError reaches callers who are not the admin as its message,
    without Herald-internal file and line; the admin keeps them."""
    async with srv.ws() as ws, srv.ws() as ws_admin:
        anon = Client(ws)
        r = await anon.request({"type": "mutate", "path": "extra:boom", "args": {}})
        check(r["type"] == "error" and r["code"] == "FunctionError" and r["message"] == "boom",
              f"mutation error, anonymous: {r}")
        r = await anon.request({"type": "query", "path": "extra:boomQuery", "args": {}})
        check(r["type"] == "error" and r["message"] == "boom", f"query error, anonymous: {r}")
        r = await anon.request({"type": "sub", "id": "b", "path": "extra:boomQuery", "args": {}})
        check(r["type"] == "error" and r["message"] == "boom", f"subscription error: {r}")
        admin = Client(ws_admin)
        r = await admin.request({"type": "auth", "token": srv.key})
        check(r["type"] == "ack", "admin sign-in")
        r = await admin.request({"type": "mutate", "path": "extra:boom", "args": {}})
        check(r["type"] == "error" and LOCATED_BOOM.match(r["message"]),
              f"mutation error, admin: {r}")
        r = await admin.request({"type": "query", "path": "extra:boomQuery", "args": {}})
        check(r["type"] == "error" and LOCATED_BOOM.match(r["message"]), f"query, admin: {r}")
    status, reply = call(srv, "mutation", "extra:boom")
    check(status == 400 and reply.get("errorMessage") == "boom", f"HTTP, anonymous: {reply}")
    status, reply = call(srv, "mutation", "extra:boom", token=srv.key)
    check(LOCATED_BOOM.match(reply.get("errorMessage", "")), f"HTTP, admin: {reply}")


async def dev_error_locations(srv):
    """With --dev every caller sees where the error was raised."""
    async with srv.ws() as ws:
        anon = Client(ws)
        r = await anon.request({"type": "mutate", "path": "extra:boom", "args": {}})
        check(r["type"] == "error" and LOCATED_BOOM.match(r["message"]),
              f"--dev, mutation, anonymous: {r}")
        r = await anon.request({"type": "query", "path": "extra:boomQuery", "args": {}})
        check(r["type"] == "error" and LOCATED_BOOM.match(r["message"]),
              f"--dev, query, anonymous: {r}")


async def reloads(srv, app):
    async with srv.ws() as ws:
        c = Client(ws)
        c.pending_subs.add("job")
        await c.request({"type": "sub", "id": "job", "path": "videos:getJobById",
                         "args": {"jobId": "job-0001"}})
        check("reloaded" not in c.results["job"], "before the reload")
        original = open(os.path.join(app, "functions", "videos.lua")).read()
        changed = original.replace(
            '''      :withIndex("by_job_id", function(q) return q:eq("jobId", args.jobId) end)
      :first()
  end,''', '''      :withIndex("by_job_id", function(q) return q:eq("jobId", args.jobId) end)
      :first()
    if doc then doc.reloaded = true end
    return doc
  end,''').replace('''    return ctx.db:query("videos")
      :withIndex("by_job_id"''', '''    local doc = ctx.db:query("videos")
      :withIndex("by_job_id"''')
        check(changed != original, "test edit applies")
        write(app, "videos.lua", changed)
        srv.sighup()
        # The same connection receives the new function's result, unasked.
        while not c.results["job"].get("reloaded"):
            await c.pump(10)
        check(c.results["job"]["reloaded"] is True, "SIGHUP reload re-ran the subscription")
        # A broken file is refused with its line; the previous version stays.
        write(app, "broken.lua", "local M = {}\nM.x = herald.query{handler = function() end\n")
        srv.sighup()
        check(srv.wait_for_line("functions/broken.lua:3:"), "refused reload names file and line")
        status, reply = call(srv, "query", "videos:getJobById", {"jobId": "job-0001"})
        check(status == 200 and reply["value"].get("reloaded") is True,
              f"previous functions stay after a refused reload: {reply}")
        # The console's reload message: refused without the key, then with the error.
        r = await c.request({"type": "reload"})
        check(r["type"] == "error" and r["code"] == "Unauthorized", f"reload needs the key: {r}")
        r = await c.request({"type": "auth", "token": srv.key})
        check(r["type"] == "ack", "admin sign-in")
        r = await c.request({"type": "reload"})
        check(r["type"] == "error" and "functions/broken.lua:3:" in r["message"],
              f"reload message reports the broken file: {r}")
        os.unlink(os.path.join(app, "functions", "broken.lua"))
        write(app, "videos.lua", original)
        r = await c.request({"type": "reload"})
        check(r["type"] == "ack", f"reload after the fix: {r}")
        while c.results["job"].get("reloaded"):
            await c.pump(10)
        check("reloaded" not in c.results["job"], "subscription follows the restored function")
        r = await c.request({"type": "ping"})
        check(r["type"] == "pong", "the connection survived every reload")


async def auth(srv, alice_iss, other_iss):
    alice = alice_iss.token("user-alice", email="alice@example.com")
    bob = alice_iss.token("user-bob")
    async with srv.ws() as ws:
        c = Client(ws)
        c.pending_subs.add("me")
        r = await c.request({"type": "sub", "id": "me", "path": "extra:me", "args": {}})
        check(r["value"] is None, f"anonymous identity: {r}")
        r = await c.request({"type": "auth", "token": alice})
        check(r["type"] == "ack", f"JWT sign-in: {r}")
        while not c.results["me"]:
            await c.pump(10)
        check(c.results["me"]["subject"] == "user-alice" and
              c.results["me"]["email"] == "alice@example.com" and
              c.results["me"]["tokenIdentifier"] == alice_iss.issuer + "|user-alice",
              f"identity after sign-in: {c.results['me']}")
        r = await c.request({"type": "auth", "token": bob})
        while c.results["me"]["subject"] != "user-bob":
            await c.pump(10)
        check(r["type"] == "ack" and c.results["me"]["tokenIdentifier"].endswith("|user-bob"),
              f"re-authentication re-ran the subscription as the new user: {r}")
        expired = alice_iss.token("user-alice", ttl=-3600)
        r = await c.request({"type": "auth", "token": expired})
        check(r["type"] == "error" and r["code"] == "Unauthorized", f"expired token: {r}")
        while c.results["me"] is not None:
            await c.pump(10)
        check(c.results["me"] is None, "a refused token signs the connection out")
        wrong_aud = Issuer(alice_iss.issuer, "someone-else")
        wrong_aud.key, wrong_aud.kid = alice_iss.key, alice_iss.kid
        r = await c.request({"type": "auth", "token": wrong_aud.token("user-alice")})
        check(r["type"] == "error" and r["code"] == "Unauthorized", f"wrong audience: {r}")
        r = await c.request({"type": "auth", "token": other_iss.token("user-eve")})
        check(r["type"] == "ack", f"second provider: {r}")
        while (c.results["me"] or {}).get("subject") != "user-eve":
            await c.pump(10)
        r = await c.request({"type": "auth", "token": None})
        check(r["type"] == "ack", "sign-out")
        while c.results["me"] is not None:
            await c.pump(10)
        # A token that runs out while connected: the server signs the connection out.
        r = await c.request({"type": "auth", "token": other_iss.token("user-eve", ttl=2)})
        check(r["type"] == "ack", f"short-lived token: {r}")
        while (c.results["me"] or {}).get("subject") != "user-eve":
            await c.pump(10)
        notice = None
        while c.results["me"] is not None:
            m = await c.pump(15)
            if m["type"] == "error" and m.get("id") is None:
                notice = m
        check(notice and notice["code"] == "Unauthorized" and "expired" in notice["message"],
              f"expiry announced: {notice}")
    status, reply = call(srv, "query", "extra:me", {}, token=alice)
    check(status == 200 and reply["value"]["subject"] == "user-alice", f"HTTP Bearer JWT: {reply}")
    status, reply = call(srv, "query", "extra:me", {}, token=alice[:-4] + "AAAA")
    check(status == 401 and reply["code"] == "Unauthorized", f"HTTP tampered JWT: {reply}")
    status, reply = call(srv, "query", "extra:me", {})
    check(status == 200 and reply["value"] is None, "HTTP anonymous")


def refuses_broken_start(work):
    app = os.path.join(work, "broken-app")
    shutil.copytree(JOBS, app)
    write(app, "oops.lua", "return {x = herald.query{handler = function() return 1 end}\n")
    data = tempfile.mkdtemp(prefix="herald-fn-broken-", dir=work)
    srv = Server(HERALD, app, data, expect_start=False)
    check(srv.proc.returncode != 0 and "functions/oops.lua:2: '}' expected" in srv.output(),
          f"a broken function file stops the start: {srv.output()!r}")


def main():
    work = tempfile.mkdtemp(prefix="herald-fn-test-")
    alice_iss = Issuer("https://auth.example.test/", "herald-tests", "RS256")
    other_iss = Issuer("https://other.example.test", "herald-tests", "ES256", leeway=0)
    app = app_with_issuers(JOBS, [alice_iss, other_iss], work)
    write(app, "extra.lua", EXTRA)
    data = os.path.join(work, "data")
    seed(data, app)
    srv = Server(HERALD, app, data, extra=["--fn-instructions", "5000000", "--fn-memory", "32"])
    try:
        asyncio.run(live_calls(srv))
        asyncio.run(hostile(srv))
        asyncio.run(isolation(srv))
        asyncio.run(error_locations(srv))
        asyncio.run(reloads(srv, app))
        asyncio.run(auth(srv, alice_iss, other_iss))
    finally:
        rc = srv.stop()
        out = srv.output()
        check(rc == 0, f"server exit code {rc}")
        check("AddressSanitizer" not in out and "runtime error:" not in out,
              "sanitizers quiet: " + out[-3000:])
    dev = Server(HERALD, app, data, extra=["--dev"])
    try:
        asyncio.run(dev_error_locations(dev))
    finally:
        check(dev.stop() == 0, "--dev server exit code")
    refuses_broken_start(work)
    shutil.rmtree(work, ignore_errors=True)
    return finish("test_functions")


if __name__ == "__main__":
    sys.exit(main())
