-- withSearchIndex misuse: wrong field, unknown index, non-filter fields, paginate/order after search.
local M = {}
M.errors = herald.query{handler = function(ctx)
  local r = {}
  local function try(f) local ok, e = pcall(f) r[#r + 1] = ok and "ok" or tostring(e) end
  local function s(build) return ctx.db:query("tasks"):withSearchIndex("search_title", build) end
  try(function() return s(function(q) return q:search("owner", "x") end):collect() end)
  try(function() return ctx.db:query("tasks"):withSearchIndex("nope", function(q) return q:search("title", "x") end):collect() end)
  try(function() return ctx.db:query("nope"):withSearchIndex("search_title", function(q) return q:search("title", "x") end):collect() end)
  try(function() return s(function(q) return q:search("title", "x"):eq("priority", 1) end):collect() end)
  try(function() return s(function(q) return q:search("title", "x") end):paginate{numItems = 1} end)
  try(function() return s(function(q) return q:search("title", "x") end):order("desc"):collect() end)
  try(function() return s(function(q) return q:search("title", "x") end):unique() end)
  try(function() return s(function(q) return q:search("title", "x") end):filter(function(q) return q:eq(1, 1) end):collect() end)
  try(function() return s(function(q) return q:search("title", "x") end):take(1025) end)
  try(function() return s(function(q) return q:search("title", "x") end):take(-1) end)
  try(function() return s(function(q) return q:search("title", "x") end):take(math.huge) end)
  try(function() return s(function(q) end):collect() end)
  try(function() return s(function(q) return q:search(1, 2) end):collect() end)
  try(function() return s(function(q) return q:search("title", "x"):eq(nil, 1) end):collect() end)
  try(function() return s(function(q) return q:search("title", "x"):eq("owner", herald.unset) end):collect() end)
  try(function() return s(function(q) return q:search("title", "x"):eq("owner", nil) end):collect() end)
  try(function() return ctx.db:query("tasks"):withIndex("by_owner"):withSearchIndex("search_title", function(q) return q:search("title", "x") end):collect() end)
  try(function() return ctx.db:query("tasks"):withSearchIndex("search_title", 5) end)
  return r
end}
return M
