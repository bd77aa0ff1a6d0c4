-- Convex-style calls with a dot (ctx.db.get(id), ctx.runQuery(path)) mixed with colon calls.
local M = {}
M.dots = herald.query{handler = function(ctx)
  local t = ctx.db.query("tasks").withIndex(ctx.db.query("tasks"), "by_owner").first(ctx.db.query("tasks"))
  local first = ctx.db.query("tasks"):first()
  local got = ctx.db.get(first._id)
  local norm = ctx.db.normalizeId("tasks", first._id)
  local me = ctx.auth.getUserIdentity()
  local n = ctx.runQuery("m:count", {})
  local odd = {pcall(ctx.db.get, nil)}
  local odd2 = {pcall(ctx.db.get, ctx.db)}
  local odd3 = {pcall(ctx.db.get, {}, first._id)}
  local odd4 = {pcall(ctx.runQuery)}
  local odd5 = {pcall(ctx.runQuery, {db = ctx.db}, "m:count")}
  return {t and t.title or herald.null, got.title, norm, me and me.subject or herald.null, n, odd[1], odd2[1], odd3[1], odd4[1], odd5[1]}
end}
M.count = herald.query{handler = function(ctx) return #ctx.db.query("tasks").collect(ctx.db.query("tasks")) end}
M.mutDots = herald.mutation{handler = function(ctx)
  local id = ctx.db.insert("events", {kind = "click", x = 3})
  ctx.db.patch(id, {x = 4})
  ctx.db.replace(id, {kind = "click", x = 5})
  local x = ctx.db.get(id).x
  ctx.db.delete(id)
  return {x, ctx.runMutation("m:inner", {})}
end}
M.inner = herald.mutation{handler = function(ctx) return ctx.db.insert("events", {kind = "note", body = "i"}) end}
return M
