-- Query engine errors caught with pcall: unknown table, unique over many, bad take, bad names.
local M = {}
M.errors = herald.query{handler = function(ctx)
  local r = {}
  local function try(f) local ok, e = pcall(f) r[#r + 1] = ok and "ok" or tostring(e) end
  try(function() return ctx.db:query("nope"):collect() end)
  try(function() return ctx.db:query("tasks"):unique() end)
  try(function() return ctx.db:query("tasks"):take(-1) end)
  try(function() return ctx.db:query("tasks"):take(1.5) end)
  try(function() return ctx.db:query("tasks"):take(math.huge) end)
  try(function() return ctx.db:query("tasks"):take(1e300) end)
  try(function() return ctx.db:query("tasks"):take(math.maxinteger) end)
  try(function() return ctx.db:query("tasks"):take(0) end)
  try(function() return ctx.db:query(5) end)
  try(function() return ctx.db:query("tasks"):withIndex(5) end)
  try(function() return ctx.db:query("tasks"):withIndex("by_owner", function(q) return 1 end):collect() end)
  try(function() return ctx.db:query("tasks"):withIndex("by_owner", function(q) return q:eq(5, 1) end):collect() end)
  try(function() return ctx.db:query("tasks"):withIndex("by_owner", function(q) return q:eq("title", 1) end):collect() end)
  try(function() return ctx.db:query("tasks"):withIndex("by_owner", function(q) error("inside") end):collect() end)
  try(function() return ctx.db:query("\0tasks"):collect() end)
  try(function() return ctx.db.query() end)
  return r
end}
return M
