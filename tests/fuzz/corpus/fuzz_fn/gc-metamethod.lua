-- __gc finalizers that use ctx.db: during a call, after it ended, from the next call and at close.
local M = {}
stashed_ctx = nil
local keep = {}
local function finalizer(tag)
  return {__gc = function(o)
    local c = stashed_ctx
    if c then
      local ok, r = pcall(function() return c.db:query("tasks"):first() end)
      keep[#keep + 1] = tag .. ":" .. tostring(ok)
      pcall(c.db.insert, c.db, "events", {kind = "click", x = #keep})
      pcall(c.runQuery, c, "m:count", {})
    end
  end}
end
M.makeGarbage = herald.query{handler = function(ctx)
  stashed_ctx = ctx
  for i = 1, 200 do setmetatable({}, finalizer("query")) end
  local junk = {}
  for i = 1, 2000 do junk[i] = {i, tostring(i)} end
  return #keep
end}
M.mutate = herald.mutation{handler = function(ctx)
  local before = #keep
  for i = 1, 200 do setmetatable({}, finalizer("mutation")) end
  for i = 1, 2000 do local t = {string.rep("g", 50)} end
  stashed_ctx = ctx
  return before
end}
M.count = herald.query{handler = function(ctx) return #keep end}
M.useStashed = herald.query{handler = function()
  if not stashed_ctx then return "none" end
  return {pcall(function() return stashed_ctx.db:query("tasks"):first() end)}
end}
setmetatable({}, finalizer("load"))
return M
