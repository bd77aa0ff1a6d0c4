-- filter(): every comparison and logical operator, operands of every kind, chained filters.
local M = {}
M.filters = herald.query{handler = function(ctx)
  local q = ctx.db:query("tasks")
    :filter(function(q) return q:or_(q:eq(q:field("owner"), "ada"), q:gt(q:field("priority"), 0)) end)
    :filter(function(q) return q:not_(q:eq(q:field("done"), true)) end)
    :filter(function(q) return q["and"](q, q:neq(q:field("title"), ""), q:lte(1, q:field("priority"))) end)
  local r1 = q:collect()
  local r2 = ctx.db:query("users"):filter(function(q)
    return q:and_(q:gte(q:field("age"), 30), q:lt(q:field("org.id"), "zz"), q:eq(q:field("missing"), nil))
  end):collect()
  local r3 = ctx.db:query("tasks"):filter(function(q) return q:eq(q:field("meta.score"), 3.5) end):first()
  local r4 = ctx.db:query("tasks"):filter(function(q) return q:or_() end):collect()
  local r5 = ctx.db:query("tasks"):filter(function(q) return q:eq(q:field("tags"), herald.array{"fuzz", "lua"}) end):collect()
  local e1 = {pcall(function() return ctx.db:query("tasks"):filter(function(q) return 5 end):collect() end)}
  local e2 = {pcall(function() return ctx.db:query("tasks"):filter(function(q) return q:eq(q:eq(1, 1), 1) end):collect() end)}
  local e3 = {pcall(function() return ctx.db:query("tasks"):filter(function(q) return q:not_(1) end):collect() end)}
  local e4 = {pcall(function() return ctx.db:query("tasks"):filter(function(q) return q:eq(q:field(5), 1) end):collect() end)}
  local e5 = {pcall(function() return ctx.db:query("tasks"):order("sideways") end)}
  return {#r1, #r2, r3 and r3.title or herald.null, #r4, #r5, e1[1], e2[1], e3[1], e4[1], e5[1]}
end}
return M
