-- A syntax error: the load fails with file and line.
local M = {}
M.f = herald.query{handler = function() return 1 end
return M
