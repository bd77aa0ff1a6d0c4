-- require("m") while m is loading: a cycle, caught at the top level; the module still loads.
local ok, e = pcall(require, "m")
local M = {}
M.cycleMessage = herald.query{handler = function() return {ok, tostring(e)} end}
M.nowLoaded = herald.query{handler = function() return {pcall(require, "m")} end}
return M
