-- A function name over the path limit: the load fails naming it.
local M = {}
M[string.rep("n", 300)] = herald.query{handler = function() return 1 end}
return M
