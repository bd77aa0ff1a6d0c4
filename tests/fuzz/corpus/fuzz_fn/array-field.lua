-- The array field: {} as an empty array by the schema's hint, herald.array, nested and wrong shapes.
local M = {}
M.tags = herald.mutation{handler = function(ctx)
  local r = {}
  local function ins(tags) return pcall(ctx.db.insert, ctx.db, "tasks", {title = "t", owner = "t", priority = 1, tags = tags}) end
  r[#r + 1] = {ins({})}
  r[#r + 1] = {ins(herald.array{})}
  r[#r + 1] = {ins({"a", "b"})}
  r[#r + 1] = {ins({a = "b"})}
  r[#r + 1] = {ins({{}})}
  r[#r + 1] = {ins("a")}
  local ok, id = ins({"x"})
  if ok then
    ctx.db:patch(id, {tags = {}})
    r[#r + 1] = herald.isArray(ctx.db:get(id).tags)
  end
  local uid = ctx.db:insert("users", {list = {}, marked = herald.array{}})
  local u = ctx.db:get(uid)
  r[#r + 1] = {herald.isArray(u.list), herald.isArray(u.marked)}
  local eid = ctx.db:insert("events", {kind = "note", body = "b", refs = {}})
  r[#r + 1] = herald.isArray(ctx.db:get(eid).refs)
  r[#r + 1] = {pcall(ctx.db.insert, ctx.db, "events", {kind = "note", body = "n", refs = herald.null})}
  r[#r + 1] = {pcall(ctx.db.patch, ctx.db, eid, {refs = {ctx.db:query("tasks"):first()._id}})}
  r[#r + 1] = {pcall(ctx.db.patch, ctx.db, eid, {refs = {x = 1}})}
  return r
end}
return M
