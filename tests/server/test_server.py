"""Black-box tests of `herald serve`: the real server on a random free port,
real WebSocket (python3-websockets) and HTTP (urllib) clients.

Run as: /usr/bin/python3 test_server.py <herald> <source root>
"""
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import herald_testlib as testlib  # noqa: E402
from herald_testlib import check, failures  # noqa: E402

HERALD, ROOT = sys.argv[1], sys.argv[2]
APP = os.path.join(ROOT, "examples", "twitch-jobs")


def Server(data, extra=()):
    """The jobs app served from `data` (durable commits, as users run it)."""
    return testlib.Server(HERALD, APP, data, extra, no_sync=False)


def http(server, path, body, key=None):
    req = urllib.request.Request(server.url(path), data=json.dumps(body).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", "Bearer " + key)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


async def recv(ws, timeout=10):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def request(ws, msg):
    await ws.send(json.dumps(msg))
    return await recv(ws)


def apply_change(value, change):
    """Applies an update change to a local copy (whole values only here;
    diffs are applied by the reference client in the JS tests)."""
    if "value" in change:
        return change["value"]
    return None


async def scenario_basic(server):
    async with server.ws() as ws:
        # Without the admin key, raw queries are refused; the connection lives on.
        r = await request(ws, {"type": "sub", "id": "s0", "query": {"table": "videos"}})
        check(r["type"] == "error" and r["code"] == "Unauthorized", f"unauthorized sub: {r}")
        r = await request(ws, {"type": "auth", "id": "a0", "token": "hk_wrong"})
        check(r["type"] == "error" and r["code"] == "Unauthorized", f"bad key: {r}")
        r = await request(ws, {"type": "auth", "id": "a1", "token": server.key})
        check(r == {"type": "ack", "id": "a1"}, f"auth: {r}")
        # Malformed input gets errors with stable codes.
        for bad, code in [("{", "InvalidArgument"), ("[1,2]", "InvalidArgument"),
                          ('{"type":"nope","id":"x"}', "InvalidArgument"),
                          ('{"type":"sub","id":"q","query":{"table":"nope"}}', "NotFound"),
                          ("[" * 5000 + "]" * 5000, "InvalidArgument")]:
            await ws.send(bad)
            r = await recv(ws)
            check(r["type"] == "error" and r["code"] == code, f"bad input {bad[:30]!r}: {r}")
        await ws.send(b"\x00\x01binary")
        r = await recv(ws)
        check(r["type"] == "error", "binary frame refused")
        r = await request(ws, {"type": "ping", "id": "p"})
        check(r == {"type": "pong", "id": "p"}, "alive after bad input")

        q = {"table": "videos", "index": "by_status", "range": [{"eq": ["status", "Transcribing"]}]}
        r = await request(ws, {"type": "sub", "id": "s1", "query": q})
        check(r["type"] == "result" and r["id"] == "s1" and r["value"] == [], f"first result: {r}")
        v0 = r["version"]
        # A mutation that changes the result: the update comes first, then the ack.
        await ws.send(json.dumps({"type": "mutate", "id": "m1", "ops": [
            {"op": "insert", "table": "videos",
             "value": {"twitchId": "t1", "title": "One", "status": "Transcribing", "progressPercentage": 10}}]}))
        first = await recv(ws)
        second = await recv(ws)
        check(first["type"] == "update" and second["type"] == "ack", f"update before ack: {first} {second}")
        check(second.get("id") == "m1" and first["version"] == second["version"] > v0, "versions")
        new_id = second["value"][0]
        check(isinstance(new_id, str) and len(new_id) == 32, "ack carries the new id")
        change = first["changes"][0]
        check(change["id"] == "s1", "change names the subscription")
        # A write that cannot affect the query sends no update: only the ack arrives.
        r = await request(ws, {"type": "mutate", "id": "m2", "ops": [
            {"op": "insert", "table": "videos", "value": {"twitchId": "t2", "title": "Two", "status": "Queued"}}]})
        check(r["type"] == "ack" and r["id"] == "m2", f"unrelated write: only an ack: {r}")
        # A failing mutation: error, nothing applied.
        r = await request(ws, {"type": "mutate", "id": "m3", "ops": [
            {"op": "insert", "table": "videos", "value": {"twitchId": "t3", "title": "Three", "status": "Transcribing"}},
            {"op": "patch", "id": new_id, "value": {"progressPercentage": "lots"}}]})
        check(r["type"] == "error" and r["code"] == "ValidationError", f"failing mutation: {r}")
        r = await request(ws, {"type": "query", "id": "q1", "query": q})
        check(r["type"] == "result" and len(r["value"]) == 1, f"rolled back: {r}")
        r = await request(ws, {"type": "unsub", "id": "s1"})
        check(r == {"type": "ack", "id": "s1"}, f"unsub: {r}")
        # Two subscriptions that one commit changes: both changes travel in one frame.
        r1 = await request(ws, {"type": "sub", "id": "x1", "query": {"table": "videos", "index": "by_status",
                                                                       "range": [{"eq": ["status", "Queued"]}]}})
        r2 = await request(ws, {"type": "sub", "id": "x2", "query": {"table": "videos", "take": 100}})
        check(r1["type"] == r2["type"] == "result", "two subscriptions")
        await ws.send(json.dumps({"type": "mutate", "id": "m4", "ops": [
            {"op": "insert", "table": "videos", "value": {"twitchId": "t4", "title": "Four", "status": "Queued"}}]}))
        first, second = await recv(ws), await recv(ws)
        check(first["type"] == "update" and sorted(c["id"] for c in first["changes"]) == ["x1", "x2"]
              and second["type"] == "ack", f"one frame for one commit: {first} {second}")
        return new_id


def get_status(server, path):
    try:
        with urllib.request.urlopen(server.url(path), timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def scenario_http(server, new_id):
    check(get_status(server, "/api/query") == 405, "GET on the API: 405")
    check(get_status(server, "/no-such-page.html") == 404, "a missing page: 404")
    st, r = http(server, "/api/mutation", {"ops": [{"op": "patch", "id": new_id, "value": {"progressPercentage": 55}}]})
    check(st == 401 and r["status"] == "error" and r["code"] == "Unauthorized", f"http without key: {st} {r}")
    st, r = http(server, "/api/mutation", {"ops": [{"op": "patch", "id": new_id, "value": {"progressPercentage": 55}}]},
                 server.key)
    check(st == 200 and r["status"] == "success", f"http mutation: {st} {r}")
    st, r = http(server, "/api/query", {"query": {"table": "videos", "get": new_id}}, server.key)
    check(st == 200 and r["value"]["progressPercentage"] == 55, f"http query: {r}")
    st, r = http(server, "/api/query", {"query": {"table": 5}}, server.key)
    check(st == 400 and r["code"] == "InvalidArgument", f"http bad query: {st} {r}")
    # A retried mutation with the same idempotency key is applied once and answered alike.
    body = {"ops": [{"op": "insert", "table": "videos",
                     "value": {"twitchId": "idem", "title": "Once", "status": "Queued"}}],
            "idempotencyKey": "worker-7-attempt"}
    st1, r1 = http(server, "/api/mutation", body, server.key)
    st2, r2 = http(server, "/api/mutation", body, server.key)
    check(st1 == 200 and st2 == 200 and r1 == r2, f"idempotent retry answers alike: {r1} {r2}")
    st, r = http(server, "/api/query", {"query": {"table": "videos", "index": "by_twitch_id",
                                                  "range": [{"eq": ["twitchId", "idem"]}]}}, server.key)
    check(len(r["value"]) == 1, f"idempotent retry applied once: {r}")
    st, r = http(server, "/api/mutation", {"ops": [], "idempotencyKey": ""}, server.key)
    check(st == 400, "empty idempotency key refused")


async def scenario_live(server):
    """Two clients: one watches, the other writes over HTTP; the watcher's
    copy follows every commit."""
    async with server.ws() as ws:
        await request(ws, {"type": "auth", "id": "a", "token": server.key})
        q = {"table": "videos", "index": "by_twitch_id", "range": [{"eq": ["twitchId", "live"]}], "first": True}
        r = await request(ws, {"type": "sub", "id": "w", "query": q})
        check(r["value"] is None, "nothing yet")
        st, r = http(server, "/api/mutation", {"ops": [{"op": "insert", "table": "videos",
                     "value": {"twitchId": "live", "title": "Live", "status": "Queued", "progressPercentage": 0}}]},
                     server.key)
        vid = r["value"][0]
        u = await recv(ws)
        check(u["type"] == "update" and u["changes"][0]["id"] == "w", f"watcher sees the insert: {u}")
        for p in (10, 20, 30):
            http(server, "/api/mutation", {"ops": [{"op": "patch", "id": vid, "value": {"progressPercentage": p}}]},
                 server.key)
            u = await recv(ws)
            check(u["type"] == "update", f"update for progress {p}")
        r = await request(ws, {"type": "query", "id": "q", "query": q})
        check(r["value"]["progressPercentage"] == 30, "final state")


async def scenario_consistency(server):
    """Every commit sets the same counter on 50 documents; a watcher with one
    subscription per document must never hold two different counters after a
    frame, while a writer keeps many mutations in flight (so that groups are
    committed while earlier ones are still being pushed)."""
    async with server.ws() as w, server.ws() as ws:
        await request(w, {"type": "auth", "id": "a", "token": server.key})
        await request(ws, {"type": "auth", "id": "a", "token": server.key})
        r = await request(w, {"type": "mutate", "id": "ins", "ops": [
            {"op": "insert", "table": "videos", "value": {"twitchId": f"c{i}", "title": "c", "status": "Queued",
                                                          "updatedAt": 0}} for i in range(50)]})
        ids = r["value"]
        copy = {}
        for i, vid in enumerate(ids):
            r = await request(ws, {"type": "sub", "id": f"d{i}", "query": {"table": "videos", "get": vid}})
            copy[f"d{i}"] = r["value"]["updatedAt"]
        rounds, inflight = 3000, 64
        sent = acked = 0
        torn, frames, last = 0, 0, 0

        async def writer():
            nonlocal sent, acked
            while acked < rounds:
                while sent < rounds and sent - acked < inflight:
                    sent += 1
                    await w.send(json.dumps({"type": "mutate", "id": f"m{sent}", "ops": [
                        {"op": "patch", "id": vid, "value": {"updatedAt": sent}} for vid in ids]}))
                m = await recv(w)
                if m["type"] == "ack":
                    acked += 1
        task = asyncio.create_task(writer())
        while max(copy.values()) < rounds:
            m = await recv(ws)
            if m["type"] != "update":
                continue
            frames += 1
            check(m["version"] > last, "update versions grow")
            last = m["version"]
            for ch in m["changes"]:
                copy[ch["id"]] = ch["value"]["updatedAt"] if "value" in ch else ch["diff"]["o"]["s"]["updatedAt"]
            if len(set(copy.values())) > 1:
                torn += 1
        await task
        print(f"consistency: {frames} frames, {torn} torn", flush=True)
        check(torn == 0, f"no frame leaves a mix of commits ({torn} of {frames} did)")


async def scenario_admin(server):
    """The admin console's messages: tables, schema, functions, stats, the live tail."""
    async with server.ws() as ws, server.ws() as anon:
        r = await request(anon, {"type": "admin", "id": "x", "op": "tables"})
        check(r["type"] == "error" and r["code"] == "Unauthorized", f"admin without the key: {r}")
        r = await request(anon, {"type": "tail", "id": "t"})
        check(r["type"] == "error" and r["code"] == "Unauthorized", f"tail without the key: {r}")
        await request(ws, {"type": "auth", "id": "a", "token": server.key})
        r = await request(ws, {"type": "admin", "id": "t1", "op": "tables"})
        videos = [t for t in r.get("value", []) if t["name"] == "videos"]
        st, q = http(server, "/api/query", {"query": {"table": "videos"}}, server.key)
        check(r["type"] == "result" and videos and videos[0]["count"] == len(q["value"]) and
              [i["name"] for i in videos[0]["indexes"]][:3] == ["by_id", "by_creation_time",
                                                                 "by_twitch_id"],
              f"tables with counts and indexes: {r}")
        r = await request(ws, {"type": "admin", "id": "s1", "op": "schema"})
        check(r["type"] == "result" and "videos" in r["value"]["tables"], f"schema: {r}")
        r = await request(ws, {"type": "admin", "id": "f1", "op": "functions"})
        kinds = {f["path"]: f["kind"] for f in r.get("value", [])}
        check(kinds.get("videos:getJobById") == "query" and
              kinds.get("videos:completeJob") == "mutation", f"functions: {r}")
        r = await request(ws, {"type": "admin", "id": "b1", "op": "nope"})
        check(r["type"] == "error" and r["code"] == "InvalidArgument", f"unknown op: {r}")
        r = await request(ws, {"type": "tail", "id": "tail"})
        check(r["type"] == "ack", f"tail: {r}")
        st, m = http(server, "/api/mutation", {"ops": [
            {"op": "insert", "table": "videos",
             "value": {"twitchId": "tail", "title": "Tail", "status": "Queued"}}]}, server.key)
        new_id = m["value"][0]
        commit = await recv(ws)
        check(commit["type"] == "commit" and commit["id"] == "tail" and
              commit["changes"] == [{"table": "videos", "op": "insert", "doc": new_id}],
              f"tail shows the insert: {commit}")
        http(server, "/api/mutation", {"ops": [
            {"op": "patch", "id": new_id, "value": {"status": "Downloading"}},
            ]}, server.key)
        commit2 = await recv(ws)
        check(commit2["changes"] == [{"table": "videos", "op": "update", "doc": new_id}] and
              commit2["version"] > commit["version"], f"tail shows the update: {commit2}")
        http(server, "/api/mutation", {"ops": [{"op": "delete", "id": new_id}]}, server.key)
        commit3 = await recv(ws)
        check(commit3["changes"] == [{"table": "videos", "op": "delete", "doc": new_id}],
              f"tail shows the delete: {commit3}")
        r = await request(ws, {"type": "admin", "id": "st", "op": "stats"})
        v = r.get("value", {})
        check(r["type"] == "result" and v["connections"] >= 2 and v["commits"] >= 3 and
              v["commitToPush"]["samples"] >= 3 and v["commitToPush"]["p99Ms"] >= 0 and
              v["submitToDurable"]["samples"] >= 3 and
              v["submitToDurable"]["p99Ms"] >= v["submitToDurable"]["p50Ms"] > 0 and
              v["map"]["usedBytes"] > 0 and v["map"]["sizeBytes"] >= v["map"]["usedBytes"] and
              v["version"] >= commit3["version"], f"stats: {r}")
        check(m.get("version", 0) > 0, f"HTTP mutation replies carry the commit version: {m}")
        r = await request(ws, {"type": "unsub", "id": "tail"})
        check(r["type"] == "ack", f"tail stopped: {r}")
        http(server, "/api/mutation", {"ops": [
            {"op": "insert", "table": "videos",
             "value": {"twitchId": "tail2", "title": "Tail", "status": "Queued"}}]}, server.key)
        r = await request(ws, {"type": "ping", "id": "p"})
        check(r["type"] == "pong", f"no commit frame after the tail stopped: {r}")
        # A new admin key (herald admin-key) takes over on SIGHUP; the old one stops working
        # and connections signed in with it are told so.
        out = subprocess.run([HERALD, "--data", server.data, "admin-key"], capture_output=True,
                             text=True)
        new_key = testlib.admin_key(server.data)
        check(out.returncode == 0 and new_key.startswith("hk_") and new_key != server.key and
              "admin.key" in out.stdout and new_key not in out.stdout + out.stderr,
              f"admin-key writes the new key to its file: {out}")
        server.sighup()
        notice = await recv(ws)
        check(notice["type"] == "error" and notice["code"] == "Unauthorized" and
              "admin key was changed" in notice["message"], f"old key's session told: {notice}")
        st, _ = http(server, "/api/query", {"query": {"table": "videos"}}, server.key)
        check(st == 401, "the old admin key stopped working")
        st, _ = http(server, "/api/query", {"query": {"table": "videos"}}, new_key)
        check(st == 200, "the new admin key works")
        server.key = new_key


def main():
    tmp = tempfile.mkdtemp(prefix="herald-server-")
    data = os.path.join(tmp, "data")
    server = None
    try:
        server = Server(data)
        check(server.key_shown and server.key and server.key.startswith("hk_"),
              "the first start writes an admin key")
        new_id = asyncio.run(scenario_basic(server))
        scenario_http(server, new_id)
        asyncio.run(scenario_live(server))
        asyncio.run(scenario_consistency(server))
        asyncio.run(scenario_admin(server))
        rc = server.stop()
        check(rc == 0, f"SIGTERM exits 0 (got {rc}): {''.join(server.lines)[-500:]}")
        # Restart: the key is not shown again, the data is there.
        server = Server(data)
        check(not server.key_shown, "only the first start makes an admin key")
        key = None
        server.key = None
        st, r = http(server, "/api/query", {"query": {"table": "videos"}}, key)
        check(st == 401, "still needs the key after restart")
        rc = server.stop()
        check(rc == 0, "second stop")
        # --dev: announced loudly, and raw requests work without a key; static files are served.
        server = Server(data, ["--dev", "--static", os.path.join(ROOT, "web-demo")])
        check(any("--dev" in line and "ANY client" in line for line in server.lines), "--dev is announced")
        st, r = http(server, "/api/query", {"query": {"table": "videos", "take": 1}})
        check(st == 200 and len(r["value"]) == 1, f"--dev allows raw queries: {st}")
        with urllib.request.urlopen(server.url("/"), timeout=30) as page:
            check(page.status == 200 and b"<html" in page.read(), "static index page")
        with urllib.request.urlopen(server.url("/herald.js"), timeout=30) as js:
            check(b"export function connect" in js.read(), "the JavaScript client is served")
        rc = server.stop()
        check(rc == 0, "third stop")
        p = subprocess.run([HERALD, "--data", data, "query", '{"table":"videos"}'], capture_output=True, text=True)
        docs = json.loads(p.stdout)
        check(any(d["twitchId"] == "live" and d["progressPercentage"] == 30 for d in docs), "data survives restart")
        subprocess.run([HERALD, "--data", data, "check"], check=True, capture_output=True)
    except Exception as e:
        failures.append(f"exception: {e!r}")
        print("FAIL: exception", repr(e))
        if server:
            print("".join(server.lines)[-2000:])
    finally:
        if server and server.proc.poll() is None:
            server.proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    print("server: all passed" if not failures else f"server: {len(failures)} failures")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
