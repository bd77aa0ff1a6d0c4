"""Black-box tests of what an operator watches (docs/operations.md, "Metrics
and health" and "Logs"):

- GET /metrics, read with the Prometheus text parser of Debian's
  python3-prometheus-client: refused without the admin key (401), and its
  values follow real activity (WebSockets open, subscriptions, commits and
  the commit-to-push histogram, function calls and errors by path, with no
  series for a path the app does not define);
- --metrics-bind: a listener of its own that serves /metrics without the
  key and nothing but /metrics, /healthz and /version;
- GET /healthz (200 {"status":"ok"}) and GET /version (meson's version);
- --log-format json: every line the server writes is one JSON object with
  time, level and event; an access line per HTTP request (client address,
  method, path, status) and per WebSocket open and close; and no secret
  (admin key, a JWT, an upload URL's token, a file URL's token) anywhere
  in the log.

Run as: /usr/bin/python3 test_metrics.py <herald> <source root>
"""
import asyncio
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_client import Client  # noqa: E402
from herald_testlib import (Server, call, check, finish, free_port, wait_for,  # noqa: E402
                            write_app)

HERALD, ROOT = sys.argv[1], sys.argv[2]

SCHEMA = """import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";
export default defineSchema({
  notes: defineTable({ text: v.string() }),
});
"""

NOTES = r'''
local M = {}
M.list = herald.query{handler = function(ctx) return ctx.db:query("notes"):collect() end}
M.add = herald.mutation{args = {text = v.string()}, handler = function(ctx, a)
  return ctx.db:insert("notes", {text = a.text})
end}
M.boom = herald.mutation{handler = function(ctx) error("boom on purpose") end}
M.say = herald.query{args = {text = v.string()}, handler = function(ctx, a)
  print("said:", a.text)
  return a.text
end}
M.spin = herald.mutation{args = {seconds = v.number()}, handler = function(ctx, a)
  local t0 = os.clock()
  while os.clock() - t0 < a.seconds do end -- CPU time: the writer is busy this long at least
end}
M.badByte = herald.query{handler = function(ctx) print("not UTF-8: \255 end") return 1 end}
M.uploadUrl = herald.mutation{handler = function(ctx) return ctx.storage:generateUploadUrl() end}
M.fileUrl = herald.query{args = {id = v.id("_storage")}, handler = function(ctx, a)
  return ctx.storage:getUrl(a.id)
end}
return M
'''


def get(url, headers=None, data=None, method=None):
    """(status, headers, body) of one request; HTTP errors are answers too."""
    req = urllib.request.Request(url, headers=headers or {}, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def scrape(url, key=None):
    """The samples of /metrics at `url`: {(name, frozenset(labels)): value}, and the types."""
    status, headers, body = get(url, {"Authorization": "Bearer " + key} if key else None)
    if not check(status == 200, f"/metrics answers 200: {status} {body[:200]}"):
        return {}, {}
    ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    check(ctype.startswith("text/plain; version=0.0.4"),
          f"/metrics is Prometheus' text format 0.0.4: {ctype}")
    samples, types = {}, {}
    for family in text_string_to_metric_families(body.decode()):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, types


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def meson_version():
    with open(os.path.join(ROOT, "meson.build")) as f:
        return re.search(r"version\s*:\s*'([^']+)'", f.read()).group(1)


async def open_clients(server, n):
    return [Client(await server.ws()) for _ in range(n)]


async def metrics_follow_activity(server, metrics_port):
    url = server.url("/metrics")
    status, _, body = get(url)
    check(status == 401, f"/metrics without the admin key: 401, got {status}")
    status, _, _ = get(url, {"Authorization": "Bearer hk_not_the_key"})
    check(status == 401, f"/metrics with a wrong key: 401, got {status}")

    before, types = scrape(url, server.key)
    for name, kind in [("herald_connections", "gauge"), ("herald_commits", "counter"),
                       ("herald_commit_push_seconds", "histogram"),
                       ("herald_function_duration_seconds", "histogram"),
                       ("herald_lmdb_map_used_bytes", "gauge"),
                       ("herald_writer_queue_depth", "gauge"),
                       ("herald_actions_running", "gauge"),
                       ("herald_scheduled_pending", "gauge")]:
        check(types.get(name) == kind, f"{name} is a {kind}: {types.get(name)}")
    check(value(before, "herald_connections") == 0, "no WebSocket open at first")
    check((value(before, "herald_lmdb_map_max_bytes") or 0) > 0, "the map's size limit is shown")

    clients = await open_clients(server, 3)
    try:
        now, _ = scrape(url, server.key)
        check(value(now, "herald_connections") == 3,
              f"3 WebSockets open: {value(now, 'herald_connections')}")
        check(value(now, "herald_connections_opened_total") ==
              value(before, "herald_connections_opened_total") + 3, "3 WebSockets opened")
        r = await subscribe(clients[0], "s1", "notes:list")
        check(r.get("type") == "result", f"subscribed: {r}")
        await subscribe(clients[1], "s2", "notes:list")
        now, _ = scrape(url, server.key)
        check(value(now, "herald_subscriptions") == 2,
              f"2 subscriptions: {value(now, 'herald_subscriptions')}")
        check(value(now, "herald_query_instances") == 1,
              f"identical subscriptions share 1 instance: {value(now, 'herald_query_instances')}")

        n = 5
        for i in range(n):
            status, reply = call(server, "mutation", "notes:add", {"text": f"note {i}"})
            check(status == 200, f"mutation {i}: {status} {reply}")
        status, reply = call(server, "mutation", "notes:boom")
        check(status != 200, f"the failing mutation fails: {status}")
        status, reply = call(server, "mutation", "notes:nope")
        check(status != 200, f"an unknown function fails: {status}")
        # The subscriber saw every commit.
        await asyncio.wait_for(
            _until(clients[0], lambda: len(clients[0].results.get("s1") or []) == n), 30)
        after, _ = scrape(url, server.key)
        d = lambda name, **l: (value(after, name, **l) or 0) - (value(before, name, **l) or 0)
        check(d("herald_commits_total") == n, f"commits +{n}: {d('herald_commits_total')}")
        check(1 <= d("herald_groups_total") <= n, f"groups: {d('herald_groups_total')}")
        check(d("herald_commit_push_seconds_count") == n,
              f"the latency histogram counts {n} more: {d('herald_commit_push_seconds_count')}")
        inf = value(after, "herald_commit_push_seconds_bucket", le="+Inf")
        check(inf == value(after, "herald_commit_push_seconds_count"),
              "the +Inf bucket holds every sample")
        check(d("herald_query_reruns_total") >= 1, "the shared instance was re-run")
        check(d("herald_updates_pushed_total") >= n, f"updates pushed: {d('herald_updates_pushed_total')}")
        check(d("herald_bytes_pushed_total") > 0, "bytes pushed")
        add = dict(path="notes:add", kind="mutation")
        boom = dict(path="notes:boom", kind="mutation")
        check(value(after, "herald_function_calls_total", **add) == n,
              f"notes:add ran {n} times: {value(after, 'herald_function_calls_total', **add)}")
        check(value(after, "herald_function_errors_total", **add) == 0, "notes:add never failed")
        check(value(after, "herald_function_errors_total", **boom) == 1,
              f"notes:boom failed once: {value(after, 'herald_function_errors_total', **boom)}")
        check(value(after, "herald_function_duration_seconds_count", **add) == n,
              "notes:add's durations are counted")
        check(not any(dict(labels).get("path") == "notes:nope" for _, labels in after),
              "no series for a path the app does not define")
        check(d("herald_http_requests_total", code="2xx") >= n, "HTTP requests by status class")
    finally:
        for c in clients:
            await c.ws.close()
    ok = wait_for(lambda: value(scrape(url, server.key)[0], "herald_connections") == 0)
    check(ok, "the closed WebSockets are no longer counted")

    # --metrics-bind: the same without the key, on its own port, and nothing else there.
    own = f"http://127.0.0.1:{metrics_port}"
    samples, _ = scrape(own + "/metrics")
    check(value(samples, "herald_up") == 1, "the metrics listener serves /metrics without the key")
    status, _, _ = get(own + "/api/query", data=b"{}", method="POST")
    check(status in (404, 405), f"the metrics listener serves no API: {status}")
    status, _, _ = get(own + "/admin")
    check(status == 404, f"the metrics listener serves no pages: {status}")
    status, _, body = get(own + "/healthz")
    check(status == 200 and json.loads(body) == {"status": "ok"}, f"/healthz there: {status}")

    status, _, body = get(server.url("/healthz"))
    check(status == 200 and json.loads(body) == {"status": "ok"},
          f"/healthz: 200 ok without a key: {status} {body}")
    status, _, body = get(server.url("/version"))
    check(status == 200 and json.loads(body) == {"version": meson_version()},
          f"/version: {status} {body}")


async def subscribe(client, sub_id, path):
    client.pending_subs.add(sub_id)
    return await client.request({"type": "sub", "id": sub_id, "path": path, "args": {}})


async def _until(client, cond):
    while not cond():
        await client.pump()


def json_log(work):
    """A server with --log-format json: every line JSON, access lines, no secrets."""
    app = write_app(os.path.join(work, "json"), SCHEMA, {"notes": NOTES})
    data = os.path.join(work, "json-data")
    server = Server(HERALD, app, data, extra=["--log-format", "json"])
    secrets = [server.key]
    try:
        check(call(server, "mutation", "notes:add", {"text": "x"}, token=server.key)[0] == 200,
              "a mutation with the admin key as bearer token")
        fake_jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzZWNyZXQtdXNlciJ9.c2VjcmV0LXNpZ25hdHVyZQ"
        secrets.append(fake_jwt)
        call(server, "query", "notes:list", token=fake_jwt)
        status, reply = call(server, "query", "notes:say", {"text": "tab\there"})
        check(status == 200, f"a query that prints: {status} {reply}")
        check(call(server, "query", "notes:badByte")[0] == 200, "a query that prints a bad byte")
        status, reply = call(server, "mutation", "notes:uploadUrl")
        upload_url = reply.get("value", "")
        token = upload_url.rsplit("/", 1)[-1]
        secrets.append(token)
        status, _, body = get(upload_url, {"Content-Type": "text/plain"}, data=b"hello")
        check(status == 200, f"upload: {status} {body[:200]}")
        storage_id = json.loads(body).get("storageId")
        status, reply = call(server, "query", "notes:fileUrl", {"id": storage_id})
        file_url = reply.get("value") or ""
        secrets.append(file_url.rsplit("/", 1)[-1])
        status, _, body = get(file_url)
        check(status == 200 and body == b"hello", f"the file: {status}")
        # A file URL with a wrong token: refused, and not logged either.
        bad = file_url[:-4] + "abcd"
        secrets.append(bad.rsplit("/", 1)[-1])
        check(get(bad)[0] in (403, 404), "a forged file URL is refused")

        # Files the binary carries and missing pages are requests too.
        check(get(server.url("/herald.js"))[0] == 200, "the embedded client is served")
        check(get(server.url("/no-such-page"))[0] == 404, "a missing page is a 404")

        async def ws_session():
            async with server.ws() as ws:
                c = Client(ws)
                r = await c.request({"type": "auth", "token": server.key})
                check(r.get("type") == "ack", f"WebSocket authenticated: {r}")
        asyncio.run(ws_session())
        check(server.wait_for_line('"event":"ws_close"'), "the WebSocket's close is logged")
    finally:
        server.stop()
    lines = [line for line in server.lines if line.strip()]
    parsed = []
    for line in lines:
        try:
            obj = json.loads(line)
        except ValueError:
            check(False, f"a log line that is not JSON: {line!r}")
            continue
        parsed.append(obj)
        if not check(isinstance(obj, dict) and {"time", "level", "event"} <= obj.keys(),
                     f"time, level and event: {line!r}"):
            continue
        check(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", obj["time"]) is not None,
              f"RFC 3339 UTC with milliseconds: {obj['time']}")
        check(obj["level"] in ("info", "warn", "error"), f"a level: {obj['level']}")
    events = [o.get("event") for o in parsed]
    check("listening" in events, f"the start is logged: {events[:4]}")
    http = [o for o in parsed if o.get("event") == "http"]
    muts = [o for o in http if o.get("path") == "/api/mutation" and o.get("method") == "POST"]
    check(muts and muts[0].get("status") == 200 and muts[0].get("client") == "127.0.0.1" and
          isinstance(muts[0].get("duration_ms"), (int, float)) and muts[0].get("bytes", 0) > 0,
          f"an access line for a mutation: {muts[:1]}")
    check(any(o.get("path") == "/api/storage/upload/[token]" and o.get("status") == 200
              for o in http), "the upload is logged without its token")
    check(any(o.get("path") == "/herald.js" and o.get("status") == 200 and o.get("bytes", 0) > 1000
              for o in http), "a static file has its access line, with its size")
    check(any(o.get("path") == "/no-such-page" and o.get("status") == 404 for o in http),
          "a missing page has its access line")
    check(any(o.get("status") in (403, 404) and o.get("path", "").endswith("/[token]")
              for o in http), "the forged file URL is logged without its token")
    opens = [o for o in parsed if o.get("event") == "ws_open"]
    closes = [o for o in parsed if o.get("event") == "ws_close"]
    check(opens and opens[0].get("path") == "/ws" and opens[0].get("client") == "127.0.0.1",
          f"a WebSocket's open: {opens}")
    check(closes and closes[0].get("conn") == opens[0].get("conn") and
          "duration_ms" in closes[0] and closes[0].get("reason"), f"its close: {closes}")
    printed = [o for o in parsed if o.get("event") == "print"]
    check(printed and "said:\ttab\there" in printed[0].get("msg", ""),
          f"a function's print() is a JSON line: {printed}")
    check(any("not UTF-8: \ufffd end" in o.get("msg", "") for o in printed),
          f"a byte that is not UTF-8 is printed as U+FFFD: {printed}")
    check("stopped" in events, f"the stop is logged: {events[-3:]}")
    text = "".join(server.lines)
    for secret in secrets:
        check(secret and secret not in text, f"a secret ({secret[:6]}...) is not in the log")


def stalled_writer(work):
    """/healthz says 503 while a mutation waits behind a writer that does not take it."""
    app = write_app(os.path.join(work, "stall"), SCHEMA, {"notes": NOTES})
    server = Server(HERALD, app, os.path.join(work, "stall-data"),
                    extra=["--writer-stall", "1", "--fn-instructions", "100000000000"])
    try:
        check(get(server.url("/healthz"))[0] == 200, "healthy before")
        spin = threading.Thread(target=call, args=(server, "mutation", "notes:spin", {"seconds": 4}))
        spin.start()
        time.sleep(0.2)  # the spin is at the writer; the next mutation waits behind it
        waiter = threading.Thread(target=call, args=(server, "mutation", "notes:add", {"text": "w"}))
        waiter.start()
        seen = []

        def unhealthy():
            status, _, body = get(server.url("/healthz"))
            seen.append((status, body))
            return status == 503
        check(wait_for(unhealthy, 10), f"503 while a mutation waits past --writer-stall: {seen[-1:]}")
        status, body = seen[-1]
        check(json.loads(body).get("status") == "unavailable" and
              "writer" in json.loads(body).get("reason", ""), f"saying why: {body}")
        spin.join(30)
        waiter.join(30)
        check(wait_for(lambda: get(server.url("/healthz"))[0] == 200, 10), "healthy again after")
    finally:
        server.stop()


def main():
    work = tempfile.mkdtemp(prefix="herald-metrics-")
    try:
        app = write_app(work, SCHEMA, {"notes": NOTES})
        metrics_port = free_port()
        server = Server(HERALD, app, os.path.join(work, "data"),
                        extra=["--metrics-bind", str(metrics_port)])
        try:
            check(server.wait_for_line(f"127.0.0.1:{metrics_port}/metrics"),
                  "the metrics listener says where it is (loopback when given only a port)")
            asyncio.run(metrics_follow_activity(server, metrics_port))
            # Text logs stay as they were, with an access line per request.
            check(server.wait_for_line("herald: http ") and
                  server.wait_for_line("path=/healthz status=200"), "text access lines")
        finally:
            check(server.stop() == 0, "the server stops cleanly")
        json_log(work)
        stalled_writer(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return finish("test_metrics")


if __name__ == "__main__":
    sys.exit(main())
