-- Writes from a query are refused (Unauthorized), also when caught and retried.
local M = {}
M.sneaky = herald.query{handler = function(ctx)
  local r = {}
  for _, f in ipairs({function() return ctx.db:insert("events", {kind = "click", x = 1}) end,
                      function() return ctx.db:patch(ctx.db:query("tasks"):first()._id, {priority = 1}) end,
                      function() return ctx.db:replace(ctx.db:query("tasks"):first()._id, {}) end,
                      function() return ctx.db:delete(ctx.db:query("tasks"):first()._id) end,
                      function() return ctx:runMutation("m:write", {}) end}) do
    local ok, e = pcall(f)
    r[#r + 1] = ok and "wrote!" or (type(e) == "table" and e.code or tostring(e))
  end
  return r
end}
M.write = herald.mutation{handler = function(ctx) return ctx.db:insert("events", {kind = "click", x = 2}) end}
M.uncaught = herald.query{handler = function(ctx) ctx.db:delete(ctx.db:query("tasks"):first()._id) end}
return M
