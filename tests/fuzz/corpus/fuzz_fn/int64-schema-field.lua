-- Lua integers written to an int64 field, int64 in index ranges and in any-typed documents.
local M = {}
M.write = herald.mutation{args = {id = v.optional(v.string()), owner = v.optional(v.string()),
  text = v.optional(v.string()), n = v.optional(v.number())}, handler = function(ctx, a)
  local id = ctx.db:insert("tasks", {title = "c", owner = "o", priority = 2, tags = {}, count = 41})
  ctx.db:patch(id, {count = ctx.db:get(id).count + 1})
  local uid = ctx.db:insert("users", {age = herald.int64(5), n = 5})
  local u = ctx.db:get(uid)
  local range = ctx.db:query("tasks"):withIndex("by_count", function(q)
    return q:gt("count", 40):lte("count", herald.int64(math.maxinteger)) end):collect()
  local byAge = ctx.db:query("users"):withIndex("by_org_age", function(q) return q:eq("org.id", herald.null) end):collect()
  local nilEq = {pcall(function() return ctx.db:query("users"):withIndex("by_org_age", function(q) return q:eq("org.id", nil) end):collect() end)}
  return {ctx.db:get(id).count.value, u.age.value, math.type(u.n), #range, #byAge, nilEq[1]}
end}
return M
