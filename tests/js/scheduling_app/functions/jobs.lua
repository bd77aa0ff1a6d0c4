-- Runs to schedule: one that succeeds (bump), one that fails with an error
-- (boom); the mutations that schedule them, and one that cancels a run.
local M = {}
M.bump = herald.internalMutation{args = {name = v.string()}, handler = function(ctx, a)
  local c = ctx.db:query("counters"):withIndex("by_name", function(q) return q:eq("name", a.name) end):first()
  if c then ctx.db:patch(c._id, {n = c.n + 1}) else ctx.db:insert("counters", {name = a.name, n = 1}) end
end}
M.later = herald.mutation{args = {name = v.string(), ms = v.number()}, handler = function(ctx, a)
  return ctx.scheduler:runAfter(a.ms, "jobs:bump", {name = a.name})
end}
M.boom = herald.internalMutation{args = {reportId = v.string()}, handler = function(ctx, a)
  error("report " .. a.reportId .. " has no data")
end}
M.laterBoom = herald.mutation{args = {reportId = v.string()}, handler = function(ctx, a)
  return ctx.scheduler:runAfter(0, "jobs:boom", {reportId = a.reportId})
end}
M.cancel = herald.mutation{args = {id = v.id("_scheduled_functions")}, handler = function(ctx, a)
  ctx.scheduler:cancel(a.id)
end}
return M
