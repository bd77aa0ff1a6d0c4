-- Deep Lua and C recursion: stack overflow caught, nesting past the value depth limit both ways.
local M = {}
M.luaStack = herald.query{handler = function()
  local function f(n) return f(n + 1) + 1 end
  local ok, e = pcall(f, 1)
  return {ok, tostring(e):sub(1, 40)}
end}
M.cStack = herald.query{handler = function()
  local function f(n) return pcall(f, n + 1) end
  return {f(1)}
end}
M.tostringChain = herald.query{handler = function()
  local mt = {}
  mt.__tostring = function(t) return tostring(setmetatable({}, mt)) end
  return {pcall(tostring, setmetatable({}, mt))}
end}
M.deepValue = herald.query{handler = function()
  local t = {} local c = t
  for i = 1, 70 do c.x = {} c = c.x end
  return t
end}
M.deepArray = herald.query{handler = function()
  local t = {} local c = t
  for i = 1, 63 do c[1] = {} c = c[1] end
  return t
end}
M.deepInsert = herald.mutation{handler = function(ctx)
  local t = {} local c = t
  for i = 1, 66 do c.x = {} c = c.x end
  return {pcall(ctx.db.insert, ctx.db, "users", {deep = t})}
end}
M.deepArgsToNested = herald.query{handler = function(ctx)
  local t = {} local c = t
  for i = 1, 100 do c.x = {} c = c.x end
  return {pcall(ctx.runQuery, ctx, "m:echo", {deep = t})}
end}
M.echo = herald.query{handler = function(ctx, a) return a end}
M.deepFilter = herald.query{handler = function(ctx)
  return {pcall(function()
    return ctx.db:query("tasks"):filter(function(q)
      local e = q:eq(1, 1)
      for i = 1, 200 do e = q:not_(e) end
      return e
    end):collect()
  end)}
end}
return M
