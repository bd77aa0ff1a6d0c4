-- The memory budget: big strings and tables, caught with pcall, then more work after the failure.
local M = {}
M.bigString = herald.query{handler = function() return #string.rep("x", 1 << 30) end}
M.caught = herald.query{handler = function()
  local ok, e = pcall(string.rep, "x", 64 << 20)
  local after = string.rep("y", 1000)
  return {ok, tostring(e), #after}
end}
M.growTable = herald.query{handler = function()
  local t = {}
  for i = 1, 1e9 do t[i] = i end
end}
M.caughtTable = herald.query{handler = function()
  local ok = pcall(function() local t = {} for i = 1, 1e9 do t[#t + 1] = {i} end end)
  return {ok, "still running"}
end}
M.concat = herald.query{handler = function()
  local parts = {}
  for i = 1, 2000 do parts[i] = string.rep("p", 1000) end
  local s = table.concat(parts)
  return #(s .. s .. s .. s)
end}
M.repSep = herald.query{handler = function() return #string.rep("ab", 1 << 22, ",") end}
M.formatWide = herald.query{handler = function() return {pcall(string.format, "%099d", 1)} end}
M.packBig = herald.query{handler = function() return {pcall(string.pack, "s4", string.rep("p", 100))} end}
return M
