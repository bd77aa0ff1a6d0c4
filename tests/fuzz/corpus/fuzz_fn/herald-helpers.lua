-- herald.token, tokenEqual, array, isArray, null and unset in every position.
local M = {}
M.tokens = herald.query{handler = function()
  local a, b = herald.token(), herald.token()
  return {#a, a ~= b, herald.tokenEqual(a, a), herald.tokenEqual(a, b), herald.tokenEqual(a, a .. "x"),
          herald.tokenEqual(a, nil), herald.tokenEqual(5, 5), herald.tokenEqual("", ""),
          herald.tokenEqual("a\0b", "a\0c"), herald.tokenEqual(a)}
end}
M.arrays = herald.query{handler = function()
  return {herald.array(), herald.array{}, herald.array{1, "two", herald.null}, herald.isArray(herald.array{}),
          herald.isArray({}), herald.isArray(nil), herald.isArray(5), pcall(herald.array, 5), {}}
end}
M.nulls = herald.query{handler = function()
  return {herald.null, {a = herald.null}, {herald.null, herald.null}, pcall(function() return {herald.unset} end)}
end}
M.unsetReturned = herald.query{handler = function() return herald.unset end}
M.unsetNested = herald.query{handler = function() return {a = herald.unset} end}
M.unsetInArgs = herald.query{handler = function(ctx) return {pcall(ctx.runQuery, ctx, "m:tokens", {x = herald.unset})} end}
M.unsetInFilter = herald.query{handler = function(ctx)
  return {pcall(function() return ctx.db:query("tasks"):filter(function(q) return q:eq(q:field("owner"), herald.unset) end):collect() end),
          pcall(function() return ctx.db:query("tasks"):withIndex("by_owner", function(q) return q:eq("owner", herald.unset) end):collect() end)}
end}
M.nullResult = herald.query{handler = function() return herald.null end}
return M
