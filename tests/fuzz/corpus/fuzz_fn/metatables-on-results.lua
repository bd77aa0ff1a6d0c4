-- Metatables on documents and results: __index, __pairs, __len, __newindex; protected ones stay hidden.
local M = {}
M.docs = herald.query{handler = function(ctx)
  local docs = ctx.db:query("tasks"):collect()
  setmetatable(docs[1], {__index = function(t, k) return "from __index" end, __pairs = function() error("pairs") end,
                         __len = function() return 1000 end, __newindex = function() error("newindex") end})
  local arr = herald.array{1, 2}
  local ok = pcall(setmetatable, arr, {})
  local ok2 = pcall(setmetatable, herald.int64(1), nil)
  return {docs[1], docs[1].nothing, getmetatable(docs) == false, ok, ok2,
          getmetatable(herald.bytes("x")), getmetatable("").__index == string}
end}
M.proxy = herald.query{handler = function(ctx)
  local real = ctx.db:query("tasks"):first()
  return setmetatable({}, {__index = real, __pairs = function(t) return next, real, nil end})
end}
M.lenLies = herald.query{handler = function()
  return setmetatable({1, 2, 3}, {__len = function() return 1 end})
end}
M.arrayMtObject = herald.query{handler = function()
  local t = herald.array{}
  t.x = 1
  return t
end}
M.validatorAsValue = herald.query{handler = function() return v.string() end}
M.fnDefAsValue = herald.query{handler = function() return M.docs end}
M.weak = herald.query{handler = function()
  return setmetatable({a = {}, b = {}}, {__mode = "kv"})
end}
M.stringMeta = herald.query{handler = function()
  getmetatable("").__index = function(s, k) return function() return "hijacked" end end
  return ("x"):upper()
end}
M.afterHijack = herald.query{handler = function(ctx)
  return ctx.db:query("tasks"):withIndex("by_owner", function(q) return q:eq("owner", "ada") end):first()
end}
return M
