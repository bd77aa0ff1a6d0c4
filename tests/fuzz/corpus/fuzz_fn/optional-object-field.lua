-- The optional object field: absent, empty, partial, null where a union allows it, patched whole.
local M = {}
M.meta = herald.mutation{handler = function(ctx)
  local r = {}
  local function ins(meta) return pcall(ctx.db.insert, ctx.db, "tasks", {title = "m", owner = "m", priority = 1, tags = {}, meta = meta}) end
  r[#r + 1] = {ins(nil)}
  r[#r + 1] = {ins({})}
  r[#r + 1] = {ins({score = 1})}
  r[#r + 1] = {ins({note = herald.null})}
  r[#r + 1] = {ins({note = 5})}
  r[#r + 1] = {ins(herald.null)}
  r[#r + 1] = {ins({score = 0/0})}
  local ok, id = ins({score = 2, note = "n"})
  if ok then
    ctx.db:patch(id, {meta = herald.unset})
    r[#r + 1] = ctx.db:get(id).meta == nil
  end
  r[#r + 1] = #ctx.db:query("tasks"):withIndex("by_score", function(q) return q:eq("meta.score", herald.null) end):collect()
  r[#r + 1] = #ctx.db:query("tasks"):withIndex("by_score", function(q) return q:lt("meta.score", 2) end):collect()
  return r
end}
return M
