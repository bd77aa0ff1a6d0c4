-- A mutation that writes and then fails: its writes must be rolled back by the caller.
local M = {}
M.fail = herald.mutation{handler = function(ctx)
  for i = 1, 20 do ctx.db:insert("events", {kind = "click", x = i}) end
  ctx.db:patch(ctx.db:query("tasks"):first()._id, {priority = 100})
  error("and now fail")
end}
M.failLate = herald.mutation{returns = v.number(), handler = function(ctx)
  ctx.db:insert("events", {kind = "note", body = "late"})
  return "not a number"
end}
M.count = herald.query{handler = function(ctx) return #ctx.db:query("events"):collect() end}
return M
