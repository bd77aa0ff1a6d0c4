-- To-be-closed variables: __close on normal exit, on error, on limits, closing with ctx.db.
local M = {}
M.normal = herald.query{handler = function(ctx)
  local log = {}
  do
    local a <close> = setmetatable({}, {__close = function(_, e) log[#log + 1] = "a:" .. tostring(e) end})
    local b <close> = setmetatable({}, {__close = function() log[#log + 1] = #ctx.db:query("tasks"):collect() end})
  end
  return log
end}
M.errorReplaced = herald.query{handler = function()
  local a <close> = setmetatable({}, {__close = function() error("from close") end})
  error("original")
end}
M.writesInClose = herald.mutation{handler = function(ctx)
  local a <close> = setmetatable({}, {__close = function() ctx.db:insert("events", {kind = "click", x = 7}) end})
  error("rolled back")
end}
M.badClose = herald.query{handler = function() return {pcall(function() local x <close> = 5 end)} end}
M.closeAfterLimit = herald.query{handler = function()
  local a <close> = setmetatable({}, {__close = function() local t = {} for i = 1, 1e6 do t[i] = i end end})
  while true do end
end}
return M
