-- paginate: follow continueCursor to the end, with a bad cursor, zero and huge page sizes.
local M = {}
M.pages = herald.query{handler = function(ctx)
  local seen, cursor, pages = 0, nil, 0
  repeat
    local r = ctx.db:query("tasks"):withIndex("by_owner"):paginate{numItems = 2, cursor = cursor}
    seen = seen + #r.page
    cursor = r.continueCursor
    pages = pages + 1
  until r.isDone or pages > 10
  local bad = {pcall(function() return ctx.db:query("tasks"):paginate{numItems = 1, cursor = "bogus"} end)}
  local zero = {pcall(function() return ctx.db:query("tasks"):paginate{numItems = 0} end)}
  local huge = {pcall(function() return ctx.db:query("tasks"):paginate{numItems = math.huge} end)}
  local nan = {pcall(function() return ctx.db:query("tasks"):paginate{numItems = 0/0} end)}
  local neg = {pcall(function() return ctx.db:query("tasks"):paginate{numItems = -1} end)}
  local str = {pcall(function() return ctx.db:query("tasks"):paginate{numItems = "2", cursor = 5} end)}
  local other = {pcall(function()
    local r = ctx.db:query("tasks"):withIndex("by_owner"):paginate{numItems = 1}
    return ctx.db:query("users"):paginate{numItems = 1, cursor = r.continueCursor} end)}
  local e = {pcall(function() return ctx.db:query("tasks"):paginate(5) end)}
  return {seen, pages, bad[1], zero[1], huge[1], nan[1], neg[1], str[1], other[1], e[1]}
end}
M.page = herald.query{args = {cursor = v.optional(v.union(v.string(), v.null()))}, handler = function(ctx, a)
  return ctx.db:query("users"):order("desc"):paginate{numItems = 3, cursor = a.cursor}
end}
return M
