-- Yields inside query builders, across ctx.db and runQuery (C) boundaries, and resumed later.
local M = {}
local stashed
M.yieldInBuilder = herald.query{handler = function(ctx)
  local co = coroutine.wrap(function()
    return ctx.db:query("tasks"):withIndex("by_owner", function(q)
      coroutine.yield("paused")
      return q:eq("owner", "ada")
    end):collect()
  end)
  local first = co()
  local second = co()
  return {first, #second}
end}
M.yieldAcrossRun = herald.query{handler = function(ctx)
  local co = coroutine.create(function() return ctx:runQuery("m:yields", {}) end)
  return {coroutine.resume(co)}
end}
M.yields = herald.query{handler = function() coroutine.yield(1) return 2 end}
M.yieldInSort = herald.query{handler = function()
  local co = coroutine.create(function() table.sort({3, 2, 1}, function(a, b) coroutine.yield() return a < b end) end)
  return {coroutine.resume(co)}
end}
M.a_stash = herald.query{handler = function(ctx)
  stashed = coroutine.create(function()
    coroutine.yield()
    return #ctx.db:query("tasks"):collect()
  end)
  coroutine.resume(stashed)
  return coroutine.status(stashed)
end}
M.b_resumeStashed = herald.mutation{handler = function(ctx)
  if not stashed then return "nothing" end
  local r = {coroutine.resume(stashed)}
  return {r[1], type(r[2]) == "table" and r[2].message or r[2] or herald.null}
end}
M.topYield = herald.query{handler = function() return coroutine.yield() end}
M.closeIt = herald.query{handler = function()
  local co = coroutine.create(function() local x <close> = setmetatable({}, {__close = function() error("in close") end}) coroutine.yield() end)
  coroutine.resume(co)
  return {coroutine.close(co)}
end}
return M
