-- require("m") from a handler returns the loaded module; other names are refused.
local M = {}
M.self = herald.query{handler = function()
  local me = require("m")
  return {me == M, pcall(require, "os"), pcall(require, "io"), pcall(require, "m2"),
          pcall(require, "../m"), pcall(require, ""), pcall(require, 5), pcall(require)}
end}
M.callThroughRequire = herald.query{handler = function(ctx)
  return require("m").helper(ctx)
end}
M.helper = function(ctx) return #ctx.db:query("users"):collect() end
return M
