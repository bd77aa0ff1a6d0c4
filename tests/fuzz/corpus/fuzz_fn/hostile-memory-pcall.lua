-- Memory errors caught with pcall: does the call still end with LimitExceeded, as documented?
local M = {}
M.caughtThenReturn = herald.query{handler = function()
  local ok = pcall(function() local s = string.rep("x", 16 << 20) end)
  return {caught = not ok, after = "returned normally"}
end}
M.caughtLoop = herald.query{handler = function()
  local n = 0
  for i = 1, 50 do
    if not pcall(function() local t = {} for j = 1, 1e7 do t[j] = j end end) then n = n + 1 end
  end
  return n
end}
M.errorInMemoryHandler = herald.query{handler = function()
  return {xpcall(function() return string.rep("y", 32 << 20) end, function(e) return string.rep("z", 1 << 20) end)}
end}
M.mutationKeepsWrites = herald.mutation{handler = function(ctx)
  ctx.db:insert("events", {kind = "click", x = 1})
  local ok = pcall(string.rep, "x", 16 << 20)
  return not ok
end}
return M
