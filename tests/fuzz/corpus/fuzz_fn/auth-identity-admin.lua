-- ctx.auth: identity with and without a caller, isAdmin, internal functions and their visibility.
local M = {}
M.who = herald.query{handler = function(ctx)
  local me = ctx.auth:getUserIdentity()
  local me2 = ctx.auth.getUserIdentity()
  if me then me.subject = "changed" end
  local again = ctx.auth:getUserIdentity()
  return {me = me or herald.null, same = again and again.subject or herald.null,
          dot = me2 ~= nil, admin = ctx.auth:isAdmin(), admin2 = ctx.auth.isAdmin()}
end}
M.secret = herald.internalQuery{handler = function(ctx) return "internal " .. tostring(ctx.auth:isAdmin()) end}
M.secretWrite = herald.internalMutation{handler = function(ctx) return ctx.db:insert("events", {kind = "click", x = 9}) end}
M.callsSecret = herald.query{handler = function(ctx) return ctx:runQuery("m:secret", {}) end}
M.onlyAdmin = herald.mutation{handler = function(ctx)
  if not ctx.auth:isAdmin() then herald.error{code = "FORBIDDEN", message = "admins only"} end
  return ctx:runMutation("m:secretWrite", {})
end}
M.onlySignedIn = herald.query{handler = function(ctx)
  local me = ctx.auth:getUserIdentity()
  if not me then error("sign in first") end
  return me.tokenIdentifier .. " " .. #me.groups
end}
return M
