-- herald.query(function) and herald.mutation(function) without a table, and helper-only entries.
local M = {}
M.q = herald.query(function(ctx, a) return #ctx.db:query("tasks"):collect() end)
M.m = herald.mutation(function(ctx, a) return ctx.db:insert("events", {kind = "click", x = 0}) end)
M.value = 5
M.nested = {inner = herald.query(function() return "not registered" end)}
return M
