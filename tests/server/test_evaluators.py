"""Black-box tests of the evaluator threads (src/eval.c): a query function
that takes long runs off the event loop, so another client's ping is
answered before it finishes; a connection's answers keep their order; a
client's flood of slow calls waits behind its own earlier calls, not ahead
of other clients'; a slow subscription never shows its connection a mix of
commits, its writer sees its own write before the ack, and it converges
while another client writes; a server stopping with evaluations at work
exits cleanly; all of it also on lws's poll() loop. Every check is about
order and content, never about time.

Run as: /usr/bin/python3 test_evaluators.py <herald> <source root>
"""
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_client import Client  # noqa: E402
from herald_testlib import Server, check, finish, http  # noqa: E402

HERALD, ROOT = sys.argv[1], sys.argv[2]
JOBS = os.path.join(ROOT, "examples", "twitch-jobs")
WAIT = 60  # seconds to wait for what must happen (never a speed threshold)
# Iterations of the busy loop of a slow call: a few hundred milliseconds of CPU.
BURN = 20_000_000

SLOW = r'''
local M = {}
local function burn(n)
  local x = 0
  for i = 1, n do x = (x * 31 + i) % 1000003 end
  return x
end
local function queued(ctx)
  local docs = ctx.db:query("videos")
    :withIndex("by_status", function(q) return q:eq("status", "Queued") end):collect()
  return #docs
end
M.burn = herald.query{args = {n = v.number(), tag = v.string()}, handler = function(ctx, a)
  burn(a.n)
  return a.tag
end}
M.fast = herald.query{args = {tag = v.string()}, handler = function(ctx, a) return a.tag end}
M.slowQueued = herald.query{args = {n = v.number()}, handler = function(ctx, a)
  burn(a.n)
  return queued(ctx)
end}
M.fastQueued = herald.query{handler = function(ctx) return queued(ctx) end}
return M
'''


async def recv(ws):
    return json.loads(await asyncio.wait_for(ws.recv(), WAIT))


async def answers(ws, ids):
    """Reads until every request id in `ids` is answered; returns the ids in arrival order."""
    order, want = [], set(ids)
    while want:
        m = await recv(ws)
        if m.get("id") in want:
            check(m["type"] == "result", f"answer to {m.get('id')}: {m}")
            order.append(m["id"])
            want.discard(m["id"])
    return order


def call_msg(rid, path, args):
    return json.dumps({"type": "query", "id": rid, "path": path, "args": args})


async def not_stalled(srv):
    """A slow call on one connection; a ping on another is answered first."""
    async with srv.ws() as slow, srv.ws() as other:
        events = []

        async def slow_answer():
            m = await recv(slow)
            events.append("slow")
            return m

        task = asyncio.ensure_future(slow_answer())
        await slow.send(call_msg("s", "slow:burn", {"n": BURN, "tag": "s"}))
        await asyncio.sleep(0.05)  # the call is running
        await other.send(json.dumps({"type": "ping", "id": "p"}))
        pong = await recv(other)
        events.append("pong")
        check(pong == {"type": "pong", "id": "p"}, f"ping answered: {pong}")
        m = await task
        check(m.get("type") == "result" and m.get("value") == "s", f"slow answer: {m}")
        check(events == ["pong", "slow"], f"the ping was answered while the call ran: {events}")


async def keeps_order(srv):
    """A connection's answers come in the order of its calls, slow or not."""
    async with srv.ws() as ws:
        await ws.send(call_msg("a", "slow:burn", {"n": BURN, "tag": "a"}))
        await ws.send(call_msg("b", "slow:fast", {"tag": "b"}))
        order = await answers(ws, ["a", "b"])
        check(order == ["a", "b"], f"answers in call order: {order}")


async def fairness(srv):
    """One evaluator thread: a client's three slow calls, then another client's one;
    the other client's goes right after the first client's running call."""
    async with srv.ws() as flood, srv.ws() as other:
        for k in range(3):
            await flood.send(call_msg(f"f{k}", "slow:burn", {"n": BURN, "tag": f"f{k}"}))
        await asyncio.sleep(0.05)
        await other.send(call_msg("o", "slow:burn", {"n": BURN, "tag": "o"}))
        done = []

        async def collect(ws, ids):
            for rid in await answers(ws, ids):
                done.append(rid)

        await asyncio.gather(collect(flood, ["f0", "f1", "f2"]), collect(other, ["o"]))
        check(done.index("o") < done.index("f1"),
              f"the other client's call ran before the flood's second: {done}")


async def subscription(srv, key):
    """A slow and a fast subscription to the same count: every state the client
    holds has them equal, versions never go back, the writer's ack comes after
    its write shows, and both converge while another client writes."""
    async with srv.ws() as ws, srv.ws() as other:
        c = Client(ws)
        r = await c.request({"type": "auth", "token": key})
        check(r["type"] == "ack", f"auth: {r}")
        o = Client(other)
        await o.request({"type": "auth", "token": key})
        torn = []

        pump = c.pump

        async def checked_pump(timeout=30):
            # After each whole message (a frame applies all its changes together).
            m = await pump(timeout)
            if "slow" in c.results and "fast" in c.results and c.results["slow"] != c.results["fast"]:
                torn.append((dict(c.results), m))
            return m

        c.pump = checked_pump
        for sid, path, args in (("slow", "slow:slowQueued", {"n": BURN}),
                                ("fast", "slow:fastQueued", {})):
            c.pending_subs.add(sid)
            r = await c.request({"type": "sub", "id": sid, "path": path, "args": args})
            check(r["type"] == "result", f"sub {sid}: {r}")
        start = c.results["fast"]
        # Read your writes: when the ack comes, both show the new video.
        for k in range(3):
            r = await c.request({"type": "mutate", "path": "videos:create",
                                 "args": {"twitchId": f"ev-own-{k}", "title": "t"}})
            check(r["type"] == "ack", f"create {k}: {r}")
            check(c.results.get("slow") == start + k + 1 and c.results.get("fast") == start + k + 1,
                  f"after ack {k}: {c.results} (from {start})")
        # Another client writes while the slow one keeps being evaluated.
        for k in range(20):
            await o.ws.send(json.dumps({"type": "mutate", "id": f"m{k}", "path": "videos:create",
                                        "args": {"twitchId": f"ev-other-{k}", "title": "t"}}))
        for k in range(20):
            while f"m{k}" not in o.answers:
                await o.pump(WAIT)
            check(o.answers[f"m{k}"]["type"] == "ack", f"other create {k}: {o.answers[f'm{k}']}")
        want = start + 23
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while (c.results.get("slow") != want or c.results.get("fast") != want) and \
                loop.time() < deadline:
            try:
                await c.pump(deadline - loop.time())
            except asyncio.TimeoutError:
                break
        check(c.results.get("slow") == want and c.results.get("fast") == want,
              f"both converge to {want}: {c.results}")
        check(not torn, f"no torn state: {torn[:3]}")
        check(not c.errors, f"versions never go back: {c.errors}")
        status, reply = http(srv, "query", {"path": "slow:fastQueued", "args": {}})
        check(status == 200 and reply.get("value") == want, f"HTTP agrees: {status} {reply}")


async def http_slow(srv):
    """The HTTP path hands slow calls over too and answers them."""
    loop = asyncio.get_running_loop()
    status, reply = await loop.run_in_executor(
        None, lambda: http(srv, "query", {"path": "slow:burn", "args": {"n": BURN, "tag": "h"}}))
    check(status == 200 and reply.get("value") == "h", f"HTTP slow query: {status} {reply}")


async def stop_while_busy(srv):
    async with srv.ws() as ws:
        for k in range(4):
            await ws.send(call_msg(f"z{k}", "slow:burn", {"n": BURN, "tag": "z"}))
        await asyncio.sleep(0.1)
        check(srv.stop() == 0, "a server stopping with evaluations at work exits cleanly")


def main():
    work = tempfile.mkdtemp(prefix="herald-eval-test-")
    app = os.path.join(work, "app")
    shutil.copytree(JOBS, app)
    with open(os.path.join(app, "functions", "slow.lua"), "w") as f:
        f.write(SLOW)
    data = os.path.join(work, "data")
    out = subprocess.run([HERALD, "--data", data, "--app", app, "import", "--table", "videos",
                          os.path.join(JOBS, "seed", "videos.jsonl")], capture_output=True, text=True)
    check(out.returncode == 0, "seed import: " + out.stderr)
    flags = ["--fn-instructions", "500000000"]
    srv = Server(HERALD, app, data, extra=flags + ["--evaluators", "2"])
    try:
        asyncio.run(not_stalled(srv))
        asyncio.run(keeps_order(srv))
        asyncio.run(subscription(srv, srv.key))
        asyncio.run(http_slow(srv))
    finally:
        rc = srv.stop()
        out = srv.output()
        check(rc == 0, f"server exit code {rc}")
        check("AddressSanitizer" not in out and "runtime error:" not in out,
              "sanitizers quiet: " + out[-3000:])
    # lws's own poll() loop (HERALD_LOOP=poll; what serves when the libev plugin is
    # missing) serves and stops the same way.
    os.environ["HERALD_LOOP"] = "poll"
    try:
        poll = Server(HERALD, app, data, extra=flags)
    finally:
        del os.environ["HERALD_LOOP"]
    try:
        asyncio.run(not_stalled(poll))
        asyncio.run(http_slow(poll))
    finally:
        check(poll.stop() == 0, "the poll() loop stops on SIGTERM")
    one = Server(HERALD, app, data, extra=flags + ["--evaluators", "1"])
    try:
        asyncio.run(fairness(one))
        asyncio.run(stop_while_busy(one))
    finally:
        one.stop()
        out = one.output()
        check("AddressSanitizer" not in out and "runtime error:" not in out,
              "sanitizers quiet (one evaluator): " + out[-3000:])
    shutil.rmtree(work, ignore_errors=True)
    return finish("test_evaluators")


if __name__ == "__main__":
    sys.exit(main())
