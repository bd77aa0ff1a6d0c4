-- An error raised while the module loads: the load fails with file and line.
local M = {}
M.f = herald.query{handler = function() return 1 end}
herald.error{code = "AT_LOAD", message = "refusing to load"}
return M
