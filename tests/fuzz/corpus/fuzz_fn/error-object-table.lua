-- error() with values that are not strings: tables, nil, numbers, booleans, metatables.
local M = {}
M.plainTable = herald.query{handler = function() error({code = "LimitExceeded", message = "fake"}) end}
M.nilError = herald.query{handler = function() error(nil) end}
M.number = herald.query{handler = function() error(42) end}
M.float = herald.query{handler = function() error(0/0) end}
M.boolean = herald.query{handler = function() error(false) end}
M.withTostring = herald.query{handler = function() error(setmetatable({}, {__tostring = function() return "custom" end})) end}
M.tostringErrors = herald.query{handler = function() error(setmetatable({}, {__tostring = function() error("nested") end})) end}
M.level2 = herald.query{handler = function() error("level two", 2) end}
M.coroutine = herald.query{handler = function() error(coroutine.create(print)) end}
M.fn = herald.query{handler = function() error(print) end}
M.nullSentinel = herald.query{handler = function() error(herald.null) end}
M.hugeMessage = herald.query{handler = function() error(string.rep("m", 100000)) end}
return M
