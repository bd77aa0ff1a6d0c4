"""ctx.vectorSearch on a live server: results against plain-Python cosine,
q.eq and q.or filters (with '.' and ':'), every refused input with its
code, a mutation that sees its own write, and a query subscription over
the native WebSocket protocol that a write to a vector re-runs, with the
new neighbours arriving as an update.

Run as: /usr/bin/python3 test_vector.py <herald> <source root>
"""
import asyncio
import math
import os
import random
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from herald_client import Client  # noqa: E402
from herald_testlib import Server, call, check, finish  # noqa: E402

HERALD = sys.argv[1]
DIMS = 8

SCHEMA = '''import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";

export default defineSchema({
  items: defineTable({
    name: v.string(),
    kind: v.string(),
    emb: v.optional(v.array(v.float64())),
  }).vectorIndex("by_emb", { vectorField: "emb", dimensions: %d, filterFields: ["kind"] }),
  notes: defineTable({ text: v.string() }),
});
''' % DIMS

FUNCTIONS = r'''
local M = {}
local function search(ctx, a)
  local opts = {vector = a.vector, limit = a.limit}
  if a.kinds then
    opts.filter = function(q)
      if #a.kinds == 1 then return q.eq("kind", a.kinds[1]) end
      local alts = {}
      for i, k in ipairs(a.kinds) do alts[i] = q:eq("kind", k) end
      if #alts == 2 then return q.or_(table.unpack(alts)) end
      return q["or"](table.unpack(alts))
    end
  end
  return ctx.vectorSearch(a.table or "items", a.index or "by_emb", opts)
end
M.similar = herald.query{handler = function(ctx, a)
  local out = {}
  for i, r in ipairs(search(ctx, a)) do
    local d = ctx.db:get(r._id)
    out[i] = {name = d.name, score = r._score}
  end
  return out
end}
M.raw = herald.query{handler = search}
M.colon = herald.query{handler = function(ctx, a)
  return ctx:vectorSearch("items", "by_emb", {vector = a.vector, limit = 1})
end}
M.nan = herald.query{handler = function(ctx, a)
  local vec = {} for i = 1, %d do vec[i] = 1 end
  vec[3] = 0/0
  return ctx.vectorSearch("items", "by_emb", {vector = vec})
end}
M.badFilter = herald.query{handler = function(ctx, a)
  local vec = {} for i = 1, %d do vec[i] = 1 end
  return ctx.vectorSearch("items", "by_emb", {vector = vec, filter = function(q) return q.eq("name", "x") end})
end}
M.notAFilter = herald.query{handler = function(ctx, a)
  local vec = {} for i = 1, %d do vec[i] = 1 end
  return ctx.vectorSearch("items", "by_emb", {vector = vec, filter = function(q) return 42 end})
end}
M.put = herald.mutation{handler = function(ctx, a)
  return ctx.db:insert("items", {name = a.name, kind = a.kind, emb = a.emb})
end}
M.move = herald.mutation{handler = function(ctx, a)
  ctx.db:patch(a.id, {emb = a.emb})
end}
M.note = herald.mutation{handler = function(ctx, a) return ctx.db:insert("notes", {text = "n"}) end}
-- A mutation sees its own write.
M.putAndFind = herald.mutation{handler = function(ctx, a)
  local id = ctx.db:insert("items", {name = a.name, kind = "own", emb = a.emb})
  local got = ctx.vectorSearch("items", "by_emb", {vector = a.emb, limit = 1})
  return {inserted = id, first = got[1]._id}
end}
return M
''' % (DIMS, DIMS, DIMS)


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / math.sqrt(sum(x * x for x in a)) / math.sqrt(sum(y * y for y in b))


def expected(docs, q, limit, kinds=None):
    """The model: plain-Python cosine over every document with a vector."""
    scored = [(cosine(d["emb"], q), d["name"]) for d in docs.values()
              if d.get("emb") is not None and len(d["emb"]) == DIMS
              and any(x != 0 for x in d["emb"]) and (kinds is None or d["kind"] in kinds)]
    scored.sort(key=lambda s: -s[0])
    return scored[:limit]


def same(got, want, what):
    ok = len(got) == len(want) and all(
        abs(g["score"] - w[0]) < 1e-5 for g, w in zip(got, want))
    # Names must match where scores are not tied.
    ok = ok and all(g["name"] == w[1] for g, w in zip(got, want)
                    if sum(1 for x in want if abs(x[0] - w[0]) < 1e-6) == 1)
    check(ok, f"{what}: got {[(g['name'], round(g['score'], 6)) for g in got]}, "
              f"want {[(n, round(s, 6)) for s, n in want]}")


def code(r):
    return r.get("code") or (r.get("errorData") or {}).get("code")


async def live(server, docs, ids):
    rnd = random.Random(7)
    q = [rnd.uniform(-1, 1) for _ in range(DIMS)]
    async with server.ws() as ws:
        c = Client(ws)
        r = await c.request({"type": "sub", "id": "near", "path": "items:similar",
                             "args": {"vector": q, "limit": 3}})
        check(r.get("type") == "result", f"subscribe: {r}")
        same(r.get("value", []), expected(docs, q, 3), "the subscription's first result")
        # A write to another table does not change it; a write to a vector does.
        st, _ = call(server, "mutation", "items:note", {})
        check(st == 200, "a note")
        far = max(docs, key=lambda n: -cosine(docs[n]["emb"], q) if docs[n].get("emb") else 0)
        st, r2 = call(server, "mutation", "items:move", {"id": ids[far], "emb": [x * 2 for x in q]})
        check(st == 200, f"move: {r2}")
        docs[far]["emb"] = [x * 2 for x in q]
        got = None
        for _ in range(20):
            m = await c.pump(10)
            if m.get("type") == "update":
                got = m
                break
        check(got is not None, "an update after the write to a vector")
        value = c.results.get("near")
        same(value or [], expected(docs, q, 3), "the neighbours after the write")
        check(value and value[0]["name"] == far, f"the moved document comes first: {value}")
        # A new document nearer than all arrives too.
        st, r3 = call(server, "mutation", "items:put", {"name": "newcomer", "kind": "b", "emb": q})
        docs["newcomer"] = {"name": "newcomer", "kind": "b", "emb": q}
        ids["newcomer"] = r3.get("value")
        for _ in range(20):
            m = await c.pump(10)
            if m.get("type") == "update":
                break
        value = c.results.get("near")
        same(value or [], expected(docs, q, 3), "the neighbours after an insert")


async def main():
    tmp = tempfile.mkdtemp(prefix="herald-vector-")
    app, data = os.path.join(tmp, "app"), os.path.join(tmp, "data")
    os.makedirs(os.path.join(app, "functions"))
    with open(os.path.join(app, "schema.ts"), "w") as f:
        f.write(SCHEMA)
    with open(os.path.join(app, "functions", "items.lua"), "w") as f:
        f.write(FUNCTIONS)
    server = Server(HERALD, app, data)
    try:
        rnd = random.Random(1)
        docs, ids = {}, {}
        for i in range(60):
            name = f"d{i}"
            d = {"name": name, "kind": "abc"[i % 3]}
            if i % 11 != 5:
                d["emb"] = [rnd.uniform(-1, 1) for _ in range(DIMS)]
            if i % 13 == 7:
                d["emb"] = [0.5] * (DIMS - 1)  # wrong length: not in the index
            args = {"name": name, "kind": d["kind"]}
            if "emb" in d:
                args["emb"] = d["emb"]
            st, r = call(server, "mutation", "items:put", args)
            check(st == 200, f"insert {name}: {r}")
            docs[name] = d
            ids[name] = r.get("value")
        for t in range(10):
            q = [rnd.uniform(-1, 1) for _ in range(DIMS)]
            st, r = call(server, "query", "items:similar", {"vector": q})
            check(st == 200, f"search: {r}")
            same(r.get("value", []), expected(docs, q, 10), f"default limit, query {t}")
            st, r = call(server, "query", "items:similar", {"vector": q, "limit": 256})
            same(r.get("value", []), expected(docs, q, 256), f"limit 256, query {t}")
            st, r = call(server, "query", "items:similar", {"vector": q, "limit": 4, "kinds": ["b"]})
            same(r.get("value", []), expected(docs, q, 4, {"b"}), f"q.eq filter, query {t}")
            st, r = call(server, "query", "items:similar",
                         {"vector": q, "limit": 9, "kinds": ["a", "c"]})
            same(r.get("value", []), expected(docs, q, 9, {"a", "c"}), f"q.or_ filter, query {t}")
            st, r = call(server, "query", "items:similar",
                         {"vector": q, "limit": 12, "kinds": ["a", "c", "b"]})
            same(r.get("value", []), expected(docs, q, 12, {"a", "b", "c"}), f"q[\"or\"] filter, query {t}")
        st, r = call(server, "query", "items:raw", {"vector": docs["d1"]["emb"], "limit": 1})
        check(st == 200 and r["value"][0]["_id"] == ids["d1"] and abs(r["value"][0]["_score"] - 1) < 1e-6
              and set(r["value"][0]) == {"_id", "_score"}, f"results are {{_id, _score}}: {r}")
        st, r = call(server, "query", "items:raw", {"vector": docs["d1"]["emb"], "kinds": ["nobody"]})
        check(st == 200 and r.get("value") == [], f"no match is an empty array: {r}")
        st, r = call(server, "query", "items:colon", {"vector": docs["d2"]["emb"]})
        check(st == 200 and r["value"][0]["_id"] == ids["d2"], f"ctx:vectorSearch: {r}")

        # Refusals, each with its code.
        one = [1.0] * DIMS
        for what, args, want in [
            ("a vector of the wrong length", {"vector": [1.0] * (DIMS - 1)}, "InvalidArgument"),
            ("a longer vector", {"vector": [1.0] * (DIMS + 1)}, "InvalidArgument"),
            ("limit 0", {"vector": one, "limit": 0}, "InvalidArgument"),
            ("limit 257", {"vector": one, "limit": 257}, "InvalidArgument"),
            ("limit 1.5", {"vector": one, "limit": 1.5}, "InvalidArgument"),
            ("an unknown index", {"vector": one, "index": "by_nothing"}, "NotFound"),
            ("a table without vector indexes", {"vector": one, "table": "notes"}, "NotFound"),
            ("an all-zero vector", {"vector": [0.0] * DIMS}, "InvalidArgument"),
        ]:
            st, r = call(server, "query", "items:raw", args)
            check(r.get("status") == "error" and code(r) == want, f"{what}: {st} {r}")
        st, r = call(server, "query", "items:nan", {})
        check(r.get("status") == "error" and code(r) == "InvalidArgument"
              and "NaN" in r.get("errorMessage", ""), f"NaN in the vector: {r}")
        st, r = call(server, "query", "items:badFilter", {})
        check(r.get("status") == "error" and code(r) == "InvalidArgument"
              and "not a filter field" in r.get("errorMessage", ""), f"a filter on `name`: {r}")
        st, r = call(server, "query", "items:notAFilter", {})
        check(r.get("status") == "error", f"a filter returning 42: {r}")

        st, r = call(server, "mutation", "items:putAndFind", {"name": "mine", "emb": [3.0, -1.0] + [0.25] * (DIMS - 2)})
        check(st == 200 and r["value"]["first"] == r["value"]["inserted"], f"a mutation sees its own write: {r}")
        docs["mine"] = {"name": "mine", "kind": "own", "emb": [3.0, -1.0] + [0.25] * (DIMS - 2)}
        ids["mine"] = r["value"]["inserted"]

        await live(server, docs, ids)
    finally:
        rc = server.stop()
        check(rc == 0, f"server exit {rc}: {server.output()[-2000:]}")
        shutil.rmtree(tmp, ignore_errors=True)
    return finish("test_vector")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
