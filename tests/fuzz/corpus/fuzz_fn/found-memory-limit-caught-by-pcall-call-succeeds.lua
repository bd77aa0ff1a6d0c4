-- docs/functions.md: "A call over its budget ends with LimitExceeded, even if the code catches
-- errors with pcall". For memory it does not: the failed allocation is caught like any error,
-- the call returns normally (rc 0) and a mutation's writes are committed.
local M = {}
M.caught = herald.query{handler = function()
  local ok = pcall(function() local s = string.rep("x", 16 << 20) end)
  return {caught = not ok, after = "returned normally"}
end}
M.keepsWrites = herald.mutation{handler = function(ctx)
  ctx.db:insert("events", {kind = "click", x = 1})
  return not pcall(string.rep, "x", 16 << 20)
end}
return M
