"""withSearchIndex on a live server, black-box: search subscriptions over
the native WebSocket protocol follow the writes that touch their terms
and filter values (new notes, a changed owner, a changed text) and end
equal to fresh queries; bad searches are refused with InvalidArgument and
a mutation that makes one keeps none of its writes; and a data folder
whose schema gains a search index gets its postings built at start.

Which searches a write re-runs (and which it leaves alone) is counted in
tests/unit/test_search.c through the read-set index; here the server must
deliver the right results.

Run as: /usr/bin/python3 test_search.py <herald> <source root>
"""
import asyncio
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_client import Client  # noqa: E402
from herald_testlib import Server, call, check, finish  # noqa: E402

HERALD = sys.argv[1]

SCHEMA_PLAIN = '''import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";

export default defineSchema({
  notes: defineTable({ body: v.string(), owner: v.string(), n: v.optional(v.number()) }),
});
'''

SCHEMA = '''import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";

export default defineSchema({
  notes: defineTable({ body: v.string(), owner: v.string(), n: v.optional(v.number()) })
    .searchIndex("search_body", { searchField: "body", filterFields: ["owner"] }),
});
'''

FUNCTIONS = r'''
local M = {}
M.search = herald.query{args = {text = v.string(), owner = v.optional(v.string())},
  handler = function(ctx, a)
    local out = {}
    for i, d in ipairs(ctx.db:query("notes"):withSearchIndex("search_body", function(q)
        local s = q:search("body", a.text)
        if a.owner then s = s:eq("owner", a.owner) end
        return s
      end):collect()) do
      out[i] = d.body .. "/" .. d.owner
    end
    return out
  end}
M.badFilter = herald.query{handler = function(ctx)
  return ctx.db:query("notes"):withSearchIndex("search_body", function(q)
    return q:search("body", "apple"):eq("body", "x") end):collect()
end}
M.add = herald.mutation{args = {body = v.string(), owner = v.string()}, handler = function(ctx, a)
  return ctx.db:insert("notes", {body = a.body, owner = a.owner})
end}
M.set = herald.mutation{args = {id = v.id("notes"), fields = v.any()}, handler = function(ctx, a)
  ctx.db:patch(a.id, a.fields)
end}
-- Inserts, then searches with `text`: a refused search must take the insert with it.
M.addThenSearch = herald.mutation{args = {text = v.string()}, handler = function(ctx, a)
  ctx.db:insert("notes", {body = "orphan", owner = "z"})
  return #ctx.db:query("notes"):withSearchIndex("search_body", function(q)
    return q:search("body", a.text) end):collect()
end}
M.count = herald.query{handler = function(ctx) return #ctx.db:query("notes"):collect() end}
return M
'''

SUBS = {
    "apple": {"text": "apple"},
    "banana": {"text": "banana"},
    "apple_a": {"text": "apple", "owner": "a"},
    "apple_b": {"text": "apple", "owner": "b"},
    "app": {"text": "app"},
}


def code(r):
    return r.get("code") or (r.get("errorData") or {}).get("code")


def write_app(app, schema):
    os.makedirs(os.path.join(app, "functions"), exist_ok=True)
    with open(os.path.join(app, "schema.ts"), "w") as f:
        f.write(schema)
    with open(os.path.join(app, "functions", "notes.lua"), "w") as f:
        f.write(FUNCTIONS)


def listed(value):
    """Lua's empty table travels as {}: an empty list."""
    return [] if value == {} else value


def query(server, args):
    st, r = call(server, "query", "notes:search", args)
    check(st == 200 and r.get("status") == "success", f"search {args}: {st} {r}")
    return listed(r.get("value"))


async def settle(c, server, what):
    """Reads updates until every subscription equals a fresh query (or 10 s pass)."""
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        fresh = {sid: query(server, args) for sid, args in SUBS.items()}
        if all(listed(c.results.get(sid)) == fresh[sid] for sid in SUBS):
            return fresh
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            check(False, f"{what}: subscriptions {c.results} never matched {fresh}")
            return fresh
        try:
            await c.pump(left)
        except asyncio.TimeoutError:
            pass


async def live(server):
    ids = {}
    for body, owner in [("Apple tart", "a"), ("banana bread", "b"), ("cherry", "c")]:
        st, r = call(server, "mutation", "notes:add", {"body": body, "owner": owner})
        check(st == 200, f"add {body}: {r}")
        ids[body] = r.get("value")
    async with server.ws() as ws:
        c = Client(ws)
        for sid, args in SUBS.items():
            c.pending_subs.add(sid)
            r = await c.request({"type": "sub", "id": sid, "path": "notes:search", "args": args})
            check(r.get("type") == "result", f"subscribe {sid}: {r}")
        fresh = await settle(c, server, "first results")
        check(fresh["apple"] == ["Apple tart/a"] and fresh["apple_b"] == [], f"first results: {fresh}")

        call(server, "mutation", "notes:add", {"body": "apple pie", "owner": "a"})
        fresh = await settle(c, server, "a new apple note")
        check(sorted(fresh["apple"]) == ["Apple tart/a", "apple pie/a"] and fresh["app"] == fresh["apple"]
              and fresh["apple_b"] == [], f"after a new apple note: {fresh}")

        call(server, "mutation", "notes:set", {"id": ids["Apple tart"], "fields": {"owner": "b"}})
        fresh = await settle(c, server, "an owner a -> b")
        check(fresh["apple_b"] == ["Apple tart/b"] and fresh["apple_a"] == ["apple pie/a"],
              f"after an owner change: {fresh}")

        call(server, "mutation", "notes:set", {"id": ids["banana bread"], "fields": {"body": "apple banana"}})
        fresh = await settle(c, server, "a text that gains apple")
        check("apple banana/b" in fresh["apple"] and fresh["banana"] == ["apple banana/b"]
              and "apple banana/b" in fresh["apple_b"], f"after a text change: {fresh}")

        call(server, "mutation", "notes:set", {"id": ids["cherry"], "fields": {"n": 1}})
        call(server, "mutation", "notes:set", {"id": ids["banana bread"], "fields": {"n": 2}})
        await settle(c, server, "writes to a field no search reads")
        check(not c.errors, f"client errors: {c.errors}")


async def main():
    tmp = tempfile.mkdtemp(prefix="herald-search-")
    app, data = os.path.join(tmp, "app"), os.path.join(tmp, "data")
    try:
        # A data folder written without the search index: its notes are found
        # once the index is added and the server restarts.
        write_app(app, SCHEMA_PLAIN)
        server = Server(HERALD, app, data)
        try:
            for i in range(30):
                st, r = call(server, "mutation", "notes:add", {"body": f"old note {i}", "owner": "o"})
                check(st == 200, f"add old note {i}: {r}")
        finally:
            server.stop()
        write_app(app, SCHEMA)
        server = Server(HERALD, app, data)
        try:
            check(len(query(server, {"text": "old note"})) == 30, "the postings of existing notes are built")
            await live(server)
            # Refusals with their code, and a refused search keeps nothing of its mutation.
            st, r = call(server, "query", "notes:count")
            before = r.get("value")
            for what, text in [("an empty text", ""), ("no letters", "!!! ..."),
                               ("17 terms", " ".join("abcdefghijklmnopq"))]:
                st, r = call(server, "query", "notes:search", {"text": text})
                check(r.get("status") == "error" and code(r) == "InvalidArgument", f"{what}: {st} {r}")
                st, r = call(server, "mutation", "notes:addThenSearch", {"text": text})
                check(r.get("status") == "error" and code(r) == "InvalidArgument", f"{what} in a mutation: {r}")
            st, r = call(server, "query", "notes:badFilter")
            check(r.get("status") == "error" and code(r) == "InvalidArgument"
                  and "not a filter field" in r.get("errorMessage", ""), f"a filter on `body`: {r}")
            st, r = call(server, "query", "notes:count")
            check(r.get("value") == before, f"refused mutations kept nothing: {before} -> {r}")
            st, r = call(server, "mutation", "notes:addThenSearch", {"text": "orphan"})
            check(r.get("value") == 1, f"a mutation's search sees its own insert: {r}")
        finally:
            server.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return finish("test_search")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
