-- herald.bytes through a document, args and results; tampered bytes values.
local M = {}
M.roundtrip = herald.mutation{args = {blob = v.optional(v.bytes())}, returns = v.array(v.any()), handler = function(ctx, a)
  local all = {}
  for i = 0, 255 do all[#all + 1] = string.char(i) end
  local b = herald.bytes(table.concat(all))
  local id = ctx.db:insert("tasks", {title = "b", owner = "o", priority = 1, tags = {}, blob = b})
  local back = ctx.db:get(id).blob
  local fixed = ctx.db:query("tasks"):withIndex("by_owner", function(q) return q:eq("owner", "bob") end):first()
  local tampered = herald.bytes("x")
  tampered.data = 5
  local ok = pcall(ctx.db.patch, ctx.db, id, {blob = tampered})
  local empty = herald.bytes("")
  ctx.db:patch(id, {blob = empty})
  return {#back, back == b, back.data:byte(256), fixed.blob and #fixed.blob or -1, ok,
          #ctx.db:get(id).blob, herald.bytes("\0\0"), pcall(herald.bytes, 5)}
end}
return M
