-- Function names that are not paths: colons, empty, long, NUL bytes, non-string keys.
local M = {}
M["a:b"] = herald.query{handler = function() return 1 end}
M[""] = herald.query{handler = function() return 2 end}
M["with space"] = herald.query{handler = function() return 3 end}
M["nul\0one"] = herald.query{handler = function() return 4 end}
M["nul\0two"] = herald.query{handler = function() return 5 end}
M[1] = herald.query{handler = function() return 6 end}
M[true] = herald.query{handler = function() return 7 end}
M["default"] = herald.query{handler = function() return 8 end}
M["émoji✓"] = herald.mutation{handler = function() return 9 end}
M.ok = herald.query{handler = function() return 10 end}
return M
