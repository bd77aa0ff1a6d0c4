-- runMutation from a query (refused), runQuery of a query that writes when nested in a mutation.
local M = {}
M.q = herald.query{handler = function(ctx) return {pcall(ctx.runMutation, ctx, "m:w", {})} end}
M.w = herald.mutation{handler = function(ctx) return ctx.db:insert("events", {kind = "click", x = 1}) end}
M.writingQuery = herald.query{handler = function(ctx) return {pcall(ctx.db.insert, ctx.db, "events", {kind = "click", x = 2})} end}
M.mutationCallsWritingQuery = herald.mutation{handler = function(ctx)
  local r = ctx:runQuery("m:writingQuery", {})
  return {r, #ctx.db:query("events"):collect()}
end}
return M
