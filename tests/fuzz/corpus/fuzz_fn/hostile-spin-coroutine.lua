-- Instruction limits inside coroutines, caught by resume, and coroutines made at load time.
local M = {}
local made_at_load = coroutine.create(function() while true do coroutine.yield() end end)
M.spin = herald.query{handler = function()
  local co = coroutine.wrap(function() while true do end end)
  co()
end}
M.resumeCatches = herald.query{handler = function()
  local n = 0
  while true do
    local co = coroutine.create(function() while true do end end)
    coroutine.resume(co)
    n = n + 1
  end
end}
M.loadTime = herald.query{handler = function()
  local n = 0
  while coroutine.resume(made_at_load) do n = n + 1 end
  return n
end}
M.nested = herald.query{handler = function()
  local function deeper(d)
    if d == 0 then while true do end end
    local co = coroutine.create(deeper)
    return coroutine.resume(co, d - 1)
  end
  return deeper(150)
end}
return M
