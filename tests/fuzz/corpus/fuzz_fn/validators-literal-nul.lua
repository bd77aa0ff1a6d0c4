-- Literal validators with NUL bytes, NaN, infinities and -0.0; odd field names and id records.
local M = {}
M.nulLiteral = herald.query{returns = v.literal("a\0b"), handler = function() return "a\0b" end}
M.nulTruncated = herald.query{returns = v.literal("a\0b"), handler = function() return "a" end}
M.nan = herald.query{returns = v.literal(0/0), handler = function() return 0/0 end}
M.inf = herald.query{returns = v.literal(-math.huge), handler = function() return -math.huge end}
M.negZero = herald.query{returns = v.literal(-0.0), handler = function() return 0.0 end}
M.null = herald.query{args = {x = v.optional(v.literal(herald.null))}, returns = v.literal(herald.null), handler = function() end}
M.idRecord = herald.query{returns = v.record(v.id("tasks"), v.any()), handler = function(ctx)
  return {[ctx.db:query("users"):first()._id] = 1} end}
M.spacedField = herald.query{args = v.object{["a b"] = v.optional(v.string())}, handler = function(ctx, a) return a end}
return M
