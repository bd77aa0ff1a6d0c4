-- replace and delete of fixed and new documents; writes to deleted and foreign ids.
local M = {}
M.run = herald.mutation{args = {id = v.optional(v.string()), owner = v.optional(v.string()),
  text = v.optional(v.string()), n = v.optional(v.number())}, handler = function(ctx, a)
  local t = ctx.db:query("tasks"):first()
  ctx.db:replace(t._id, {title = "replaced", owner = "ada", priority = 9, tags = {"r"}})
  local after = ctx.db:get(t._id)
  local id = ctx.db:insert("events", {kind = "click", x = 1})
  ctx.db:delete(id)
  local gone = ctx.db:get(id)
  local r1 = {pcall(ctx.db.delete, ctx.db, id)}
  local r2 = {pcall(ctx.db.patch, ctx.db, id, {x = 2})}
  local r3 = {pcall(ctx.db.replace, ctx.db, id, {kind = "click", x = 3})}
  local r4 = {pcall(ctx.db.replace, ctx.db, t._id, {title = 5})}
  local r5 = {pcall(ctx.db.replace, ctx.db, a.id or "", {kind = "note", body = "b"})}
  local r6 = {pcall(ctx.db.replace, ctx.db, t._id, {_creationTime = 1, title = "t", owner = "o", priority = 1, tags = {}})}
  local r7 = {pcall(ctx.db.delete, ctx.db, "not an id")}
  for _, doc in ipairs(ctx.db:query("events"):collect()) do ctx.db:delete(doc._id) end
  return {after.title, gone == nil, r1[1], r2[1], r3[1], r4[1], r5[1], r6[1], r7[1],
          #ctx.db:query("events"):collect()}
end}
return M
