-- ctx, query builders and auth stashed in globals by one call and used by later ones.
local M = {}
M.stash = herald.query{handler = function(ctx)
  saved_ctx = ctx
  saved_query = ctx.db:query("tasks"):withIndex("by_owner", function(q) return q:eq("owner", "ada") end)
  saved_auth = ctx.auth
  saved_db = ctx.db
  return "stashed"
end}
M.useInQuery = herald.query{handler = function(ctx)
  if not saved_ctx then return "nothing" end
  return {#saved_query:collect(), saved_ctx.now, saved_auth:isAdmin(), saved_ctx.auth:getUserIdentity() or herald.null,
          #saved_db:query("users"):collect()}
end}
M.useInMutation = herald.mutation{handler = function(ctx)
  if not saved_ctx then return "nothing" end
  local id = saved_db:insert("events", {kind = "click", x = 1})
  saved_db:delete(id)
  return {saved_ctx:runQuery("m:useInQuery", {}), #saved_query:take(1)}
end}
M.mutationStash = herald.mutation{handler = function(ctx) saved_mctx = ctx return 1 end}
M.writeWithMutationCtxFromQuery = herald.query{handler = function()
  if not saved_mctx then return "nothing" end
  return {pcall(saved_mctx.db.insert, saved_mctx.db, "events", {kind = "click", x = 2}),
          pcall(saved_mctx.runMutation, saved_mctx, "m:mutationStash", {})}
end}
saved_at_load = {pcall(function() return herald.token() end), os.time(), os.date("%Y")}
return M
