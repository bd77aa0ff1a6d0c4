"""Black-box tests of idempotency keys in `herald serve`, over the native
protocol (`mutate`) and HTTP (`POST /api/mutation`):

- a key belongs to its caller (a signed-in user, the admin key, or the
  anonymous callers together): the same key from another caller runs that
  caller's own mutation and never hands it someone else's result or id;
- a retry (same caller, same function or raw ops, same arguments) gets the
  first answer, value and version, without running again, over either
  transport;
- the same key from the same caller with other arguments, another function,
  or raw ops instead of a function is refused with `IdempotencyConflict`;
- records expire after `--idempotency-retention SECONDS`: a retry after that
  runs the mutation again, and the writer purges expired records (the count
  `herald check` reports goes down), while the server keeps running.

Run as: /usr/bin/python3 test_idempotency.py <herald> <source root>
"""
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_client import Client  # noqa: E402
from herald_testlib import Issuer, Server, app_with_issuers, check, finish, http  # noqa: E402

HERALD, ROOT = sys.argv[1], sys.argv[2]

SCHEMA = {"tables": {"notes": {
    "document": {"type": "object", "fields": {"owner": {"type": "string"},
                                              "text": {"type": "string"}}},
    "indexes": []}}}

NOTES = r'''
local function owner(ctx)
  if ctx.auth:isAdmin() then return "admin" end
  local me = ctx.auth:getUserIdentity()
  return me and me.subject or "anonymous"
end
local M = {}
M.add = herald.mutation{args = {text = v.string()}, handler = function(ctx, a)
  return ctx.db:insert("notes", {owner = owner(ctx), text = a.text})
end}
M.addLoud = herald.mutation{args = {text = v.string()}, handler = function(ctx, a)
  return ctx.db:insert("notes", {owner = owner(ctx), text = string.upper(a.text)})
end}
return M
'''


def make_app(work, issuers):
    base = os.path.join(work, "notes-app")
    os.makedirs(os.path.join(base, "functions"))
    with open(os.path.join(base, "schema.json"), "w") as f:
        json.dump(SCHEMA, f)
    with open(os.path.join(base, "functions", "notes.lua"), "w") as f:
        f.write(NOTES)
    return app_with_issuers(base, issuers, os.path.join(work, "with-auth"))


def mutation(srv, path, args, key, token=None):
    return http(srv, "mutation", {"path": path, "args": args, "idempotencyKey": key}, token)


def notes(srv):
    status, reply = http(srv, "query", {"query": {"table": "notes"}}, srv.key)
    check(status == 200, f"raw query of notes: {status} {reply}")
    return reply.get("value", [])


def records(srv):
    """The idempotency record count `herald check` reports, run beside the server."""
    p = subprocess.run([HERALD, "--data", srv.data, "check"], capture_output=True, text=True,
                       timeout=120)
    check(p.returncode == 0, f"herald check beside the server: {p.stdout} {p.stderr}")
    for line in p.stdout.splitlines():
        if line.startswith("idempotency records:"):
            return int(line.split(":")[1])
    check(False, f"herald check reports the idempotency records: {p.stdout!r}")
    return -1


def conflict(status, reply, what):
    check(status == 400 and reply.get("code") == "IdempotencyConflict" and
          "idempotency key" in reply.get("errorMessage", ""), f"{what}: {status} {reply}")


async def scopes(srv, alice, bob):
    key = "job-42"
    # Alice's first call runs; her retry gets the same id and version, nothing new written.
    st, first = mutation(srv, "notes:add", {"text": "alice's note"}, key, alice)
    check(st == 200 and isinstance(first.get("value"), str), f"alice's first call: {st} {first}")
    st, again = mutation(srv, "notes:add", {"text": "alice's note"}, key, alice)
    check(st == 200 and again == first, f"alice's retry gets the first answer: {again} {first}")
    st, again = mutation(srv, "notes.js:add", {"text": "alice's note"}, key, alice)
    check(st == 200 and again == first, f"`notes.js:add` names the same function: {again}")
    check(len(notes(srv)) == 1, "the retries wrote nothing")
    # Bob, the anonymous callers and the admin have keys of their own.
    st, bobs = mutation(srv, "notes:add", {"text": "bob's note"}, key, bob)
    check(st == 200 and bobs.get("value") not in (None, first["value"]),
          f"bob's call with alice's key runs as his own: {bobs} {first}")
    st, anon = mutation(srv, "notes:add", {"text": "anonymous note"}, key)
    check(st == 200 and anon.get("value") not in (None, first["value"], bobs.get("value")),
          f"an anonymous call with the same key runs: {anon}")
    st, admin = mutation(srv, "notes:add", {"text": "admin note"}, key, srv.key)
    check(st == 200 and admin.get("value") not in (None, first["value"], bobs.get("value"),
                                                   anon.get("value")),
          f"the admin's call with the same key runs: {admin}")
    by_owner = {d["owner"]: d for d in notes(srv)}
    check(sorted(by_owner) == ["admin", "anonymous", "user-alice", "user-bob"] and
          by_owner["user-bob"]["text"] == "bob's note" and
          by_owner["user-bob"]["_id"] == bobs.get("value"),
          f"each caller's own mutation ran, once: {by_owner}")
    st, again = mutation(srv, "notes:add", {"text": "bob's note"}, key, bob)
    check(st == 200 and again == bobs, f"bob's retry gets his own first answer: {again}")
    # The same key from the same caller for something else is refused.
    st, r = mutation(srv, "notes:add", {"text": "another note"}, key, alice)
    conflict(st, r, "same key, other arguments")
    st, r = mutation(srv, "notes:addLoud", {"text": "alice's note"}, key, alice)
    conflict(st, r, "same key, another function")
    st, r = http(srv, "mutation", {"ops": [], "idempotencyKey": key}, srv.key)
    conflict(st, r, "same key, raw ops where the admin called a function")
    check(len(notes(srv)) == 4, "refused calls wrote nothing")

    # The native protocol shares the records with HTTP.
    async with srv.ws() as ws_alice, srv.ws() as ws_bob:
        a, b = Client(ws_alice), Client(ws_bob)
        r = await a.request({"type": "auth", "token": alice})
        check(r["type"] == "ack", f"alice signs in: {r}")
        r = await b.request({"type": "auth", "token": bob})
        check(r["type"] == "ack", f"bob signs in: {r}")
        r = await a.request({"type": "mutate", "path": "notes:add",
                             "args": {"text": "alice's note"}, "idempotencyKey": key})
        check(r["type"] == "ack" and r.get("value") == first["value"] and
              r.get("version") == first.get("version"),
              f"alice's WebSocket retry of her HTTP call: {r} {first}")
        r = await a.request({"type": "mutate", "path": "notes:add",
                             "args": {"text": "changed"}, "idempotencyKey": key})
        check(r["type"] == "error" and r["code"] == "IdempotencyConflict",
              f"WebSocket: same key, other arguments: {r}")
        ws_key = "ws-only"
        r1 = await b.request({"type": "mutate", "path": "notes:add",
                              "args": {"text": "over the socket"}, "idempotencyKey": ws_key})
        r2 = await b.request({"type": "mutate", "path": "notes:add",
                              "args": {"text": "over the socket"}, "idempotencyKey": ws_key})
        check(r1["type"] == "ack" and r2["type"] == "ack" and r1["value"] == r2["value"] and
              r1["version"] == r2["version"], f"WebSocket retry: {r1} {r2}")
        r = await a.request({"type": "mutate", "path": "notes:add",
                             "args": {"text": "over the socket"}, "idempotencyKey": ws_key})
        check(r["type"] == "ack" and r["value"] != r1["value"],
              f"alice's call with bob's WebSocket key runs: {r} {r1}")
    check(len(notes(srv)) == 6, "six notes: one per caller and key")

    # Raw operations: a retry is answered alike, other operations are refused.
    ops = [{"op": "insert", "table": "notes", "value": {"owner": "ops", "text": "raw"}}]
    st, r1 = http(srv, "mutation", {"ops": ops, "idempotencyKey": "raw-1"}, srv.key)
    st2, r2 = http(srv, "mutation", {"ops": ops, "idempotencyKey": "raw-1"}, srv.key)
    check(st == 200 and st2 == 200 and r1 == r2, f"raw ops retry: {r1} {r2}")
    other = [{"op": "insert", "table": "notes", "value": {"owner": "ops", "text": "other"}}]
    st, r = http(srv, "mutation", {"ops": other, "idempotencyKey": "raw-1"}, srv.key)
    conflict(st, r, "raw ops, same key, other operations")
    async with srv.ws() as ws:
        c = Client(ws)
        await c.request({"type": "auth", "token": srv.key})
        r = await c.request({"type": "mutate", "ops": ops, "idempotencyKey": "raw-1"})
        check(r["type"] == "ack" and r["value"] == r1["value"] and r["version"] == r1["version"],
              f"raw ops: WebSocket retry of an HTTP call: {r} {r1}")
        r = await c.request({"type": "mutate", "path": "notes:add",
                             "args": {"text": "raw"}, "idempotencyKey": "raw-1"})
        check(r["type"] == "error" and r["code"] == "IdempotencyConflict",
              f"a function call with a key used for raw ops: {r}")
    check(len(notes(srv)) == 7, "one raw insert")
    # Keys of 1 to 200 bytes.
    st, r = mutation(srv, "notes:add", {"text": "x"}, "k" * 201, alice)
    check(st == 400 and r.get("code") == "InvalidArgument", f"a key of 201 bytes: {st} {r}")
    check(records(srv) == 7, "seven records: alice, bob, anonymous, admin, two WebSocket, raw")


async def expiry(srv, alice):
    st, first = mutation(srv, "notes:add", {"text": "short-lived"}, "e-1", alice)
    for k in ("e-2", "e-3"):
        mutation(srv, "notes:add", {"text": k}, k, alice)
    check(records(srv) == 3, "three records")
    st, again = mutation(srv, "notes:add", {"text": "short-lived"}, "e-1", alice)
    check(again == first, f"a retry within the retention is answered from the record: {again}")
    # Past the retention (1 s), a retry runs again, and the writer purges what expired.
    time.sleep(2.2)
    st, late = mutation(srv, "notes:add", {"text": "short-lived"}, "e-1", alice)
    check(st == 200 and late.get("value") != first.get("value") and
          late.get("version", 0) > first.get("version", 0),
          f"a retry after the retention runs the mutation again: {late} {first}")
    check(len([d for d in notes(srv) if d["text"] == "short-lived"]) == 2,
          "the expired key's mutation ran twice")
    check(records(srv) == 1, "expired records were purged, the new one kept")
    st, r = mutation(srv, "notes:add", {"text": "other"}, "e-1", alice)
    conflict(st, r, "the new record guards its key again")


def bad_options(app, work):
    for value in ("0", "-5", "soon", "1e12"):
        p = subprocess.run([HERALD, "--data", os.path.join(work, "unused"), "--app", app, "serve",
                            "--idempotency-retention", value], capture_output=True, text=True,
                           timeout=60)
        check(p.returncode == 2 and "--idempotency-retention" in p.stderr,
              f"--idempotency-retention {value} refused: {p.returncode} {p.stderr}")


def main():
    work = tempfile.mkdtemp(prefix="herald-idem-")
    iss = Issuer("https://auth.idem.test/", "herald-tests", "ES256")
    app = make_app(work, [iss])
    alice, bob = iss.token("user-alice"), iss.token("user-bob")
    servers = []
    try:
        srv = Server(HERALD, app, os.path.join(work, "data"))
        servers.append(srv)
        asyncio.run(scopes(srv, alice, bob))
        short = Server(HERALD, app, os.path.join(work, "data-short"),
                       extra=["--idempotency-retention", "1"])
        servers.append(short)
        asyncio.run(expiry(short, alice))
        bad_options(app, work)
    except Exception as e:
        check(False, f"exception: {e!r}")
    finally:
        for srv in servers:
            rc = srv.stop()
            out = srv.output()
            check(rc == 0, f"server exit code {rc}: {out[-2000:]}")
            check("AddressSanitizer" not in out and "runtime error:" not in out,
                  "sanitizers quiet: " + out[-3000:])
    shutil.rmtree(work, ignore_errors=True)
    return finish("test_idempotency")


if __name__ == "__main__":
    sys.exit(main())
