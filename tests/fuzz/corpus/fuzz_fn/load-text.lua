-- load(): text chunks with and without an env, syntax errors, bytecode refused, chunk names.
local M = {}
M.load = herald.query{handler = function(ctx)
  local f1 = load("return 1 + 1")
  local f2 = load("return x", "=chunk", "t", {x = 5})
  local f3, e3 = load("return +")
  local f4, e4 = load("\27Lua\84\0")
  local f5, e5 = load("\27LuaR\0\1\4\8\4\8\0")
  local f6 = load("return ...", "n", "b")
  local f7 = load("return ctx", "@functions/m.lua", "t", {ctx = ctx})
  local f8 = load("return io or os.execute or debug", nil, nil, _G)
  local f9 = load("x = 1", "=c", "t", nil)
  local ok10, e10 = pcall(load, function() return "return 1" end)
  local ok11, e11 = pcall(load, nil)
  local f12 = load(string.rep("(", 300) .. "1" .. string.rep(")", 300))
  return {f1(), f2(), e3 or "?", e4 or "?", e5 or "?", f6 and f6(1) or "?",
          f7() == ctx, f8() or herald.null, f9 and pcall(f9) or "?", ok10, ok11, f12 and "parsed" or "too deep"}
end}
M.loadDefinesFunction = herald.query{handler = function(ctx)
  local make = load("return function(ctx) return #ctx.db:query('tasks'):collect() end")()
  return make(ctx)
end}
M.loadSpins = herald.query{handler = function() load("while true do end")() end}
return M
