-- Lua's C library calling back into Lua that uses ctx.db: gsub, sort, and errors raised from them.
local M = {}
M.gsub = herald.query{handler = function(ctx)
  local s = ("ada bob cy"):gsub("%a+", function(name)
    local u = ctx.db:query("users"):withIndex("by_name", function(q) return q:eq("name", name) end):first()
    return u and tostring(u.age) or "?"
  end)
  local ok = pcall(string.gsub, "abc", ".", function() error("in gsub") end)
  local ok2 = pcall(string.gsub, "abc", ".", function() return {} end)
  return {s, ok, ok2}
end}
M.sort = herald.query{handler = function(ctx)
  local docs = ctx.db:query("tasks"):collect()
  table.sort(docs, function(a, b) return ctx.db:get(a._id).priority < ctx.db:get(b._id).priority end)
  local ok = pcall(table.sort, {3, 1, 2}, function() error("in sort") end)
  local ok2 = pcall(table.sort, {3, 1, 2, 5, 4, 6}, function() return true end)
  return {docs[1].title, ok, ok2}
end}
M.gmatch = herald.query{handler = function(ctx)
  local n = 0
  for w in ("a b c"):gmatch("%a") do n = n + #ctx.db:query("tasks"):take(1) end
  return n
end}
return M
