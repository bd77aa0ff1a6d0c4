-- insert, patch with herald.unset, read back in the same transaction.
local M = {}
M.run = herald.mutation{handler = function(ctx)
  local u = ctx.db:query("users"):first()
  local id = ctx.db:insert("tasks", {title = "new", owner = "cy", priority = 5, tags = {},
                                     count = 3, meta = {score = 1}, user = u._id})
  ctx.db:patch(id, {count = herald.unset, meta = {note = herald.null}, done = true})
  ctx.db:patch(id, {user = herald.unset, blob = herald.bytes("\0\1")})
  local doc = ctx.db:get(id)
  local bad = {pcall(ctx.db.patch, ctx.db, id, {title = herald.unset})}
  local bad2 = {pcall(ctx.db.patch, ctx.db, id, {meta = {score = herald.unset}})}
  local bad3 = {pcall(ctx.db.patch, ctx.db, id, {_id = "x"})}
  local bad4 = {pcall(ctx.db.patch, ctx.db, id, herald.array{1})}
  local bad5 = {pcall(ctx.db.insert, ctx.db, "tasks", {title = herald.unset})}
  local uid = ctx.db:insert("users", {name = "dee", anything = {1, 2, {x = herald.null}}})
  ctx.db:patch(uid, {name = herald.unset, age = herald.int64(7)})
  return {doc.done, doc.count == nil, doc.blob.data, bad[1], bad2[1], bad3[1], bad4[1], bad5[1],
          ctx.db:get(uid).age.value}
end}
return M
