-- herald.error{...}: code, message and data reach the caller; strings and odd data too.
local M = {}
M.table = herald.mutation{handler = function(ctx)
  ctx.db:insert("events", {kind = "click", x = 1})
  herald.error{code = "NOT_OWNER", message = "not yours", detail = {ids = {1, 2}, nested = {a = herald.null}}}
end}
M.string = herald.query{handler = function() herald.error("just a string") end}
M.noMessage = herald.query{handler = function() herald.error{code = 5} end}
M.nilData = herald.query{handler = function() herald.error() end}
M.fnData = herald.query{handler = function() herald.error{message = "has a function", f = print} end}
M.cycle = herald.query{handler = function() local d = {message = "cycle"} d.self = d herald.error(d) end}
M.bytesData = herald.query{handler = function() herald.error{message = "b", b = herald.bytes("\0"), i = herald.int64(-1)} end}
M.mixedData = herald.query{handler = function() herald.error{1, 2, message = "mixed"} end}
M.caughtAndRethrown = herald.query{handler = function()
  local ok, e = pcall(herald.error, {code = "X", message = "first"})
  e.message = e.message .. " (rethrown)"
  error(e)
end}
return M
