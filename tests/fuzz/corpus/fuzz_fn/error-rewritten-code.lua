-- A caught Herald error object with its code, message or data replaced, then raised again.
local M = {}
local function caught(f) local ok, e = pcall(f) return e end
M.limitClaim = herald.query{handler = function()
  local e = caught(function() herald.error{code = "X"} end)
  e.code = "LimitExceeded"
  error(e)
end}
M.numberCode = herald.query{handler = function(ctx)
  local e = caught(function() ctx.db:query("nope"):collect() end)
  e.code = 12
  e.message = 3.25
  error(e)
end}
M.tableMessage = herald.query{handler = function(ctx)
  local e = caught(function() ctx.db:insert("events", {}) end)
  e.message = {}
  e.code = {}
  e.data = {x = {y = {z = herald.unset}}}
  error(e)
end}
M.unknownCode = herald.query{handler = function()
  local e = caught(function() herald.error{} end)
  e.code = "InternalError"
  e.data = herald.null
  error(e)
end}
M.tostringOf = herald.query{handler = function(ctx)
  local e = caught(function() ctx.db:get(5) end)
  local e2 = caught(function() herald.error{message = "m"} end)
  e2.message = nil
  return {tostring(e), pcall(tostring, e2), getmetatable(e) == false and "protected" or "visible"}
end}
return M
