-- Spinning inside pcall and error handlers: the instruction limit must still end the call.
local M = {}
M.spin = herald.query{handler = function() while true do end end}
M.spinCaught = herald.query{handler = function()
  while true do pcall(function() while true do end end) end
end}
M.xpcall = herald.query{handler = function()
  local n = 0
  while true do xpcall(function() while true do end end, function(e) n = n + 1 return e end) end
end}
M.errorInHandler = herald.mutation{handler = function(ctx)
  for i = 1, 1e9 do
    local ok = pcall(ctx.db.insert, ctx.db, "events", {kind = "nope"})
  end
end}
M.spinInFilter = herald.query{handler = function(ctx)
  return ctx.db:query("tasks"):filter(function(q) while true do end end):collect()
end}
M.spinInClose = herald.query{handler = function()
  local x <close> = setmetatable({}, {__close = function() while true do end end})
  error("leave")
end}
return M
