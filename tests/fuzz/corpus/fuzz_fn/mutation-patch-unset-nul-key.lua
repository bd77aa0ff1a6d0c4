-- herald.unset under keys with NUL bytes, empty keys and system field names, in patch and replace.
local M = {}
M.run = herald.mutation{handler = function(ctx)
  local u = ctx.db:query("users"):first()
  local r = {}
  r[1] = {pcall(ctx.db.patch, ctx.db, u._id, {["name\0x"] = herald.unset})}
  r[2] = {pcall(ctx.db.patch, ctx.db, u._id, {[""] = herald.unset})}
  r[3] = {pcall(ctx.db.patch, ctx.db, u._id, {_id = herald.unset})}
  r[4] = {pcall(ctx.db.patch, ctx.db, u._id, {_creationTime = herald.unset})}
  r[5] = {pcall(ctx.db.patch, ctx.db, u._id, {["\0"] = herald.unset, name = "after"})}
  r[6] = {pcall(ctx.db.replace, ctx.db, u._id, {name = herald.unset})}
  r[7] = {pcall(ctx.db.patch, ctx.db, u._id, {})}
  r[8] = {pcall(ctx.db.patch, ctx.db, u._id, {org = {id = herald.unset}})}
  r[9] = ctx.db:get(u._id)
  return r
end}
return M
