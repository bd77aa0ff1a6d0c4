-- A module of internal functions only: callable with the admin key, invisible otherwise.
local M = {}
M.q = herald.internalQuery{args = {id = v.optional(v.string()), owner = v.optional(v.string()),
  text = v.optional(v.string()), n = v.optional(v.number())}, handler = function(ctx, a) return a end}
M.m = herald.internalMutation(function(ctx, a) return ctx.db:insert("events", {kind = "note", body = "internal"}) end)
M.plainHelper = function() return "not callable" end
return M
