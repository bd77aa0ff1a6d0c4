-- A __gc finalizer that never ends, run by the collector in the middle of a call. Lua
-- switches hooks off while a finalizer runs, so the instruction budget never fires and
-- the call (and the thread running it) hangs for good: libFuzzer reports a timeout.
local M = {}
M.spin = herald.query{handler = function()
  setmetatable({}, {__gc = function() while true do end end})
  for i = 1, 1e5 do local t = {i} end
  return "done"
end}
return M
