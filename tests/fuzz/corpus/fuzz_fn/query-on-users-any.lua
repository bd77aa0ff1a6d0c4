-- The table of any documents: its odd fixed documents, compound index with missing fields.
local M = {}
M.all = herald.query{handler = function(ctx)
  local all = ctx.db:query("users"):collect()
  local byName = ctx.db:query("users"):withIndex("by_name", function(q) return q:eq("name", "ada") end):unique()
  local noName = ctx.db:query("users"):withIndex("by_name", function(q) return q:eq("name", herald.null) end):collect()
  local nilEq = pcall(function() return ctx.db:query("users"):withIndex("by_name", function(q) return q:eq("name", nil) end):collect() end)
  local org = ctx.db:query("users"):withIndex("by_org_age", function(q) return q:eq("org.id", "o1"):gt("age", 0) end):collect()
  local org7 = ctx.db:query("users"):withIndex("by_org_age", function(q) return q:eq("org.id", 7) end):collect()
  local intAge = ctx.db:query("users"):withIndex("by_org_age", function(q) return q:eq("org.id", "o1"):eq("age", herald.int64(42)) end):first()
  return {nilEq, #all, byName and byName.name or herald.null, #noName, #org, #org7, intAge and intAge.name or herald.null, all}
end}
M.events = herald.query{handler = function(ctx)
  return {ctx.db:query("events"):withIndex("by_kind", function(q) return q:eq("kind", "note") end):collect(),
          ctx.db:query("events"):order("desc"):first()}
end}
return M
