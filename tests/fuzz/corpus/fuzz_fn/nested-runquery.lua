-- ctx:runQuery / ctx:runMutation inside one transaction, internal callees, errors crossing calls.
local M = {}
M.inner = herald.internalQuery{args = {owner = v.string()}, handler = function(ctx, a)
  return #ctx.db:query("tasks"):withIndex("by_owner", function(q) return q:eq("owner", a.owner) end):collect()
end}
M.add = herald.internalMutation{args = {x = v.number()}, returns = v.id("events"), handler = function(ctx, a)
  return ctx.db:insert("events", {kind = "click", x = a.x})
end}
M.boom = herald.internalQuery{handler = function() herald.error{code = "INNER", message = "inner failed"} end}
M.outer = herald.mutation{handler = function(ctx)
  local n = ctx:runQuery("m:inner", {owner = "ada"})
  local id = ctx:runMutation("m:add", {x = n})
  local again = ctx.runQuery("m.lua:inner", {owner = "bob"})
  local ok, e = pcall(ctx.runQuery, ctx, "m:boom", {})
  local bad = {pcall(ctx.runQuery, ctx, "m:inner", {owner = 5})}
  local kind = {pcall(ctx.runQuery, ctx, "m:add", {x = 1})}
  local none = {pcall(ctx.runMutation, ctx, "m:nothing", {})}
  local path = {pcall(ctx.runQuery, ctx, "", {})}
  local path2 = {pcall(ctx.runQuery, ctx, "a:b:c", {})}
  local args = {pcall(ctx.runQuery, ctx, "m:inner", "not a table")}
  return {n, ctx.db:get(id).x, again, ok, e.code, e.data.code, bad[1], kind[1], none[1], path[1], path2[1], args[1]}
end}
M.viaQuery = herald.query{handler = function(ctx) return ctx:runQuery("m:inner", {owner = "ada"}) end}
M.nothing = herald.internalQuery{handler = function() end}
M.returnsNil = herald.query{handler = function(ctx)
  local r = ctx:runQuery("m:nothing", {})
  local none = ctx:runQuery("m:nothing")
  return {r == nil, none == nil, ctx.runQuery("m:nothing", herald.null) == nil}
end}
M.default = herald.query{handler = function(ctx) return ctx:runQuery("m", {}) end}
return M
