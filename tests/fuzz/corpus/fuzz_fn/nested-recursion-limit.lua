-- Nested calls past 16 levels: LimitExceeded, caught at every level, then unwound.
local M = {}
M.down = herald.query{args = {n = v.optional(v.number())}, handler = function(ctx, a)
  local n = a.n or 0
  local ok, r = pcall(ctx.runQuery, ctx, "m:down", {n = n + 1})
  if ok then return r end
  return {depth = n, err = type(r) == "table" and r.code or tostring(r)}
end}
M.mut = herald.mutation{args = {n = v.optional(v.number())}, handler = function(ctx, a)
  local n = a.n or 0
  ctx.db:insert("events", {kind = "click", x = n})
  if n < 40 then return ctx:runMutation("m:mut", {n = n + 1}) end
  return n
end}
M.pingpong = herald.query{handler = function(ctx) return ctx:runQuery("m:pong", {}) end}
M.pong = herald.query{handler = function(ctx) return ctx:runQuery("m:pingpong", {}) end}
return M
