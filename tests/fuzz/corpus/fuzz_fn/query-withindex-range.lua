-- Index ranges: equality prefix then bounds, both orders, and ranges the engine refuses.
local M = {}
local A = {id = v.optional(v.string()), owner = v.optional(v.string()),
           text = v.optional(v.string()), n = v.optional(v.number())}
M.range = herald.query{args = A, handler = function(ctx, a)
  local n = a.n or 0
  local up = ctx.db:query("tasks"):withIndex("by_owner_priority", function(q)
    return q:eq("owner", a.owner or "ada"):gt("priority", n - 10):lte("priority", n + 10) end)
    :order("asc"):collect()
  local down = ctx.db:query("tasks"):withIndex("by_owner_priority", function(q)
    return q:eq("owner", "bob"):gte("priority", -math.huge) end):order("desc"):take(5)
  local bad = {pcall(function()
    return ctx.db:query("tasks"):withIndex("by_owner_priority", function(q)
      return q:gt("priority", 1):eq("owner", "ada") end):collect() end)}
  local bad2 = {pcall(function()
    return ctx.db:query("tasks"):withIndex("no_such_index"):collect() end)}
  local all = ctx.db:query("tasks"):withIndex("by_creation_time"):order("desc"):collect()
  local ids = ctx.db:query("tasks"):withIndex("by_id"):first()
  return {#up, #down, bad[1], tostring(bad[2]), bad2[1], #all, ids and ids._id or herald.null}
end}
M.score = herald.query{handler = function(ctx)
  return ctx.db:query("tasks"):withIndex("by_score", function(q)
    return q:gte("meta.score", 0):lt("meta.score", 1e9) end):collect()
end}
return M
