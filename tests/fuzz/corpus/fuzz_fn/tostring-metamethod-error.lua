-- print and tostring with __tostring and __name metamethods that fail, lie or recurse.
local M = {}
M.print = herald.query{handler = function(ctx)
  local r = {}
  r[1] = pcall(print, setmetatable({}, {__tostring = function() error("tostring failed") end}))
  r[2] = pcall(print, setmetatable({}, {__tostring = function() return 42 end}))
  r[3] = pcall(print, setmetatable({}, {__name = "Fancy"}))
  r[4] = pcall(print, setmetatable({}, {__name = 5}))
  r[5] = pcall(print, string.rep("long ", 1000))
  r[6] = pcall(print, nil, true, 1.5, herald.null, herald.int64(3), herald.bytes("b"), v.string(), ctx)
  r[7] = pcall(print, "a\0b")
  r[8] = pcall(tostring)
  return r
end}
M.concatMeta = herald.query{handler = function()
  local t = setmetatable({}, {__concat = function(a, b) return "joined" end})
  return {"x" .. t, t .. "y", pcall(function() return "x" .. {} end)}
end}
M.errorWithTostringThatYields = herald.query{handler = function()
  error(setmetatable({}, {__tostring = function() coroutine.yield() end}))
end}
print("loading m", setmetatable({}, {__tostring = function() return "meta at load" end}))
return M
