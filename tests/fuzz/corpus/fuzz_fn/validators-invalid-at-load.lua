-- Validators the schema code refuses when the module loads: the load fails naming the function.
local M = {}
M.ok = herald.query{args = {x = v.optional(v.literal(herald.int64(5)))}, returns = v.literal(true), handler = function() return true end}
M.optionalReturn = herald.query{returns = v.optional(v.string()), handler = function() end}
M.emptyUnion = herald.query{returns = v.union(), handler = function() return 1 end}
M.noTable = herald.query{args = {id = v.id("nope")}, handler = function() end}
M.literalTable = herald.query{args = {x = v.literal({a = 1})}, handler = function() end}
M.literalNil = herald.query{args = {x = v.literal(nil)}, handler = function() end}
M.numberKeys = herald.query{returns = v.record(v.number(), v.any()), handler = function() end}
M.emptyName = herald.query{returns = v.object{[""] = v.string()}, handler = function() end}
M.optionalItems = herald.query{returns = v.array(v.optional(v.string())), handler = function() end}
M.argsNotObject = herald.query{args = v.string(), handler = function() end}
return M
