-- Definitions changed after herald.query made them: kind, handler, args and returns replaced.
local M = {}
M.handlerNotFunction = herald.query{handler = function() return 1 end}
M.handlerNotFunction.handler = 5
M.kindSwapped = herald.query{handler = function(ctx) return ctx.db:insert("events", {kind = "click", x = 1}) end}
M.kindSwapped.kind = "mutation"
M.kindWeird = herald.mutation{handler = function() return 2 end}
M.kindWeird.kind = {}
M.internalFlip = herald.internalQuery{handler = function() return "was internal" end}
M.internalFlip.internal = false
M.rawValidator = herald.query{handler = function(ctx, a) return a end}
M.rawValidator.args = {type = "object", fields = {id = {type = "id", table = "tasks", optional = true},
  owner = {type = "string", optional = true}, text = {type = "any", optional = true}, n = {type = "number", optional = true}}}
M.returnsRaw = herald.query{handler = function() return "s" end}
M.returnsRaw.returns = {type = "union", members = herald.array{{type = "string"}, {type = "null"}}}
M.handlerTable = herald.query{handler = function() return 1 end}
M.handlerTable.handler = setmetatable({}, {__call = function(self, ctx, a) return "called a table" end})
return M
