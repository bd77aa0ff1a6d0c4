"""Black-box tests of schema changes on a running `herald serve`: the app's
schema.ts edited while a client is subscribed, applied on SIGHUP, on the
admin `reload` message and by `herald schema apply --url` (docs/schema.md
"Changing a running server's schema").

- A new index on a table of 10,000 documents and a new table: the
  subscription stays connected and keeps receiving updates, a query
  function reads the new index right after, the new table takes inserts.
- A refused change (a required field the documents lack) and a schema file
  that does not parse: the running schema stays, the server answers as
  before, the reason is logged and returned to the admin's `reload`.
- `herald schema apply` without --url is refused while the server holds the
  data folder, and names --url; with --url it applies through the server.
- The server stops cleanly (under ASan: no leak, no use after free).

Run as: /usr/bin/python3 test_schema_live.py <herald> <source root>
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
from herald_testlib import Server, call, call_value, check, finish, write_app  # noqa: E402

HERALD = sys.argv[1]
DOCS = 10_000
GROUPS = 10

SCHEMA = '''import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";

export default defineSchema({
  items: defineTable({
    n: v.number(),
    group: v.string(),
    flag: v.optional(v.boolean()),
  }),
});
'''

# The change applied live: an index on the table that has data, a new table.
GROWN = SCHEMA.replace('''  }),
});''', '''  }).index("by_group", ["group"]),
  notes: defineTable({ text: v.string() }),
});''')

# Refused: every stored item lacks `owner`.
REQUIRED = GROWN.replace("    n: v.number(),", "    n: v.number(),\n    owner: v.string(),")

# Applied by `schema apply --url`: a second index, on `flag`.
FLAGGED = GROWN.replace('.index("by_group", ["group"])',
                        '.index("by_group", ["group"]).index("by_flag", ["flag"])')

FUNCTIONS = {"items": r'''
local M = {}
M.latest = herald.query{handler = function(ctx)
  local docs = ctx.db:query("items"):order("desc"):take(2)
  local out = {}
  for i, d in ipairs(docs) do out[i] = d.n end
  return out
end}
M.inGroup = herald.query{args = {group = v.string()}, handler = function(ctx, a)
  return #ctx.db:query("items"):withIndex("by_group", function(q)
    return q:eq("group", a.group) end):collect()
end}
M.flagged = herald.query{handler = function(ctx)
  return #ctx.db:query("items"):withIndex("by_flag", function(q)
    return q:eq("flag", true) end):collect()
end}
M.add = herald.mutation{args = {n = v.number(), group = v.string()}, handler = function(ctx, a)
  return ctx.db:insert("items", {n = a.n, group = a.group})
end}
M.note = herald.mutation{args = {text = v.string()}, handler = function(ctx, a)
  return ctx.db:insert("notes", {text = a.text})
end}
M.notes = herald.query{handler = function(ctx)
  return #ctx.db:query("notes"):collect()
end}
return M
'''}


def write_schema(app, text):
    with open(os.path.join(app, "schema.ts"), "w") as f:
        f.write(text)


def seed(work, data, app):
    path = os.path.join(work, "items.jsonl")
    with open(path, "w") as f:
        for i in range(DOCS):
            f.write(json.dumps({"n": i, "group": f"g{i % GROUPS}"}) + "\n")
    out = subprocess.run([HERALD, "--data", data, "--app", app, "--no-sync", "import",
                          "--table", "items", path], capture_output=True, text=True)
    check(out.returncode == 0, f"seed import: {out.stdout}{out.stderr}")


async def next_value(c, sub_id, old, timeout=30):
    """Pumps the connection until subscription `sub_id` differs from `old`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while c.results.get(sub_id) == old:
        await c.pump(deadline - asyncio.get_running_loop().time())
    return c.results[sub_id]


async def live_change(srv, app):
    async with srv.ws() as ws:
        c = Client(ws)
        c.pending_subs.add("latest")
        await c.request({"type": "sub", "id": "latest", "path": "items:latest", "args": {}})
        check(c.results.get("latest") == [DOCS - 1, DOCS - 2], f"subscribed: {c.results}")
        status, reply = call(srv, "query", "items:inGroup", {"group": "g3"})
        check(status != 200, f"no by_group index before the change: {status} {reply}")

        # SIGHUP applies the new index (backfilled over 10,000 documents) and table.
        write_schema(app, GROWN)
        srv.sighup()
        check(srv.wait_for_line("herald: schema applied: 2 tables", 60),
              "SIGHUP applied the schema: " + srv.output()[-2000:])
        status, n = call_value(srv, "query", "items:inGroup", {"group": "g3"})
        check(status == 200 and n == DOCS // GROUPS,
              f"the new index answers right after the change: {status} {n}")
        status, nid = call_value(srv, "mutation", "items:note", {"text": "first"})
        check(status == 200 and isinstance(nid, str), f"the new table takes inserts: {nid}")
        status, n = call_value(srv, "query", "items:notes")
        check(status == 200 and n == 1, f"the new table reads back: {status} {n}")

        # The subscription lived through it: the next commit reaches it.
        status, _ = call_value(srv, "mutation", "items:add", {"n": DOCS, "group": "g3"})
        check(status == 200, "insert after the change")
        v = await next_value(c, "latest", [DOCS - 1, DOCS - 2])
        check(v == [DOCS, DOCS - 1], f"the subscription follows commits after the change: {v}")
        status, n = call_value(srv, "query", "items:inGroup", {"group": "g3"})
        check(status == 200 and n == DOCS // GROUPS + 1, f"the new index is maintained: {n}")

        # A refused change: the reason goes back to the admin, the old schema stays.
        r = await c.request({"type": "reload"})
        check(r["type"] == "error" and r.get("code") == "Unauthorized",
              f"reload needs the admin key: {r}")
        r = await c.request({"type": "auth", "token": srv.key})
        check(r["type"] == "ack", "admin sign-in")
        r = await c.request({"type": "mutate", "id": "m1", "ops": [
            {"op": "insert", "table": "notes", "value": {"text": "raw"}}]})
        check(r["type"] == "ack", f"a raw insert into the new table: {r}")
        r = await c.request({"type": "reload"})
        check(r["type"] == "ack" and r.get("value") == {"schema": "unchanged"},
              f"reload with the same schema: {r}")
        write_schema(app, REQUIRED)
        r = await c.request({"type": "reload"})
        msg = r.get("message", "")
        check(r["type"] == "error" and "items" in msg and "owner" in msg
              and "do not match" in msg, f"refused change says why: {r}")
        check(srv.wait_for_line("reload refused"), "the refusal is logged")
        status, n = call_value(srv, "query", "items:inGroup", {"group": "g3"})
        check(status == 200 and n == DOCS // GROUPS + 1, f"old schema serves after refusal: {n}")
        status, _ = call_value(srv, "mutation", "items:add", {"n": DOCS + 1, "group": "g4"})
        check(status == 200, "an item without `owner` is still accepted")
        v = await next_value(c, "latest", [DOCS, DOCS - 1])
        check(v == [DOCS + 1, DOCS], f"the subscription lives on after a refusal: {v}")

        # A schema file that does not parse: refused the same way.
        write_schema(app, GROWN.replace("defineTable({ text", "defineTable({{ text"))
        r = await c.request({"type": "reload"})
        check(r["type"] == "error" and "schema.ts" in r.get("message", ""),
              f"a broken schema file is refused naming it: {r}")
        status, n = call_value(srv, "query", "items:notes")
        check(status == 200 and n == 2, f"the server answers as before: {status} {n}")
        write_schema(app, GROWN)
        r = await c.request({"type": "ping"})
        check(r["type"] == "pong", "the connection survived every change")


def apply_live(srv, app, data):
    # Without --url the data folder's lock refuses it, and the hint names --url.
    out = subprocess.run([HERALD, "--data", data, "--app", app, "schema", "apply"],
                         capture_output=True, text=True)
    check(out.returncode != 0 and "--url" in out.stderr,
          f"schema apply beside a running server points to --url: {out.stderr}")
    write_schema(app, FLAGGED)
    status, _ = call_value(srv, "query", "items:flagged")
    check(status != 200, "no by_flag index yet")
    out = subprocess.run([HERALD, "--data", data, "--app", app, "schema", "apply",
                          "--url", f"http://127.0.0.1:{srv.port}"],
                         capture_output=True, text=True, stdin=subprocess.DEVNULL)
    check(out.returncode == 0 and "schema applied" in out.stdout,
          f"schema apply --url: {out.returncode} {out.stdout} {out.stderr}")
    check(srv.key not in out.stdout + out.stderr, "the key is never printed")
    status, _ = call_value(srv, "mutation", "items:add", {"n": -1, "group": "g0"})
    status, n = call_value(srv, "query", "items:flagged")
    check(status == 200 and n == 0, f"the index applied through --url is usable: {status} {n}")
    # Again: nothing changed, and it says so.
    out = subprocess.run([HERALD, "--data", data, "--app", app, "schema", "apply",
                          "--url", f"http://127.0.0.1:{srv.port}"],
                         capture_output=True, text=True, stdin=subprocess.DEVNULL)
    check(out.returncode == 0 and "schema unchanged" in out.stdout,
          f"schema apply --url, unchanged: {out.stdout} {out.stderr}")
    # A refused change: non-zero, with the reason.
    write_schema(app, REQUIRED)
    out = subprocess.run([HERALD, "--data", data, "--app", app, "schema", "apply",
                          "--url", f"http://127.0.0.1:{srv.port}"],
                         capture_output=True, text=True, stdin=subprocess.DEVNULL)
    check(out.returncode != 0 and "owner" in out.stderr,
          f"schema apply --url refused: {out.returncode} {out.stdout} {out.stderr}")
    write_schema(app, FLAGGED)


def main():
    work = tempfile.mkdtemp(prefix="herald-schema-live-")
    try:
        app = write_app(work, SCHEMA, FUNCTIONS)
        data = os.path.join(work, "data")
        seed(work, data, app)
        srv = Server(HERALD, app, data)
        try:
            asyncio.run(live_change(srv, app))
            apply_live(srv, app, data)
        finally:
            rc = srv.stop()
        check(rc == 0, f"the server stops cleanly (exit {rc}): {srv.output()[-3000:]}")
        for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            check(bad not in srv.output(), f"no {bad} report")
        # The schema applied live is the store's after a restart.
        out = subprocess.run([HERALD, "--data", data, "schema", "show"],
                             capture_output=True, text=True)
        check(out.returncode == 0 and "by_flag" in out.stdout, f"stored schema: {out.stdout}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return finish("schema_live")


if __name__ == "__main__":
    sys.exit(main())
