-- Return values that fail their validators, and validators built oddly.
local M = {}
M.wrongType = herald.query{returns = v.string(), handler = function() return 1 end}
M.nilForString = herald.query{returns = v.string(), handler = function() end}
M.nilForNull = herald.query{returns = v.null(), handler = function() end}
M.nilForObject = herald.query{returns = v.object{}, handler = function() end}
M.extraField = herald.query{returns = v.object{a = v.number()}, handler = function() return {a = 1, b = 2} end}
M.wrongId = herald.query{returns = v.id("tasks"), handler = function(ctx) return ctx.db:query("users"):first()._id end}
M.deadId = herald.mutation{returns = v.id("events"), handler = function(ctx)
  local id = ctx.db:insert("events", {kind = "click", x = 1})
  ctx.db:delete(id)
  return id
end}
M.literal = herald.query{returns = v.literal(herald.int64(5)), handler = function() return herald.int64(5) end}
M.literalFloat = herald.query{returns = v.literal(0.5), handler = function() return 0.5 end}
M.recordIds = herald.query{returns = v.record(v.id("tasks"), v.any()), handler = function(ctx)
  return {[ctx.db:query("tasks"):first()._id] = 1} end}
M.emptyArray = herald.query{returns = v.array(v.number()), handler = function() return {} end}
M.emptyUnion = herald.query{returns = v.union(v.array(v.number()), v.object{}), handler = function() return {} end}
return M
