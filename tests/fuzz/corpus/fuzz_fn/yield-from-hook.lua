-- The instruction limit trips while a coroutine runs, between yields, and inside pcall in a coroutine.
local M = {}
M.yieldLoop = herald.query{handler = function()
  local co = coroutine.wrap(function() while true do coroutine.yield(1) end end)
  local n = 0
  while true do n = n + co() end
end}
M.resumeSwallows = herald.query{handler = function()
  local co = coroutine.create(function() local i = 0 while true do i = i + 1 if i % 100 == 0 then coroutine.yield(i) end end end)
  local last
  for i = 1, 1e6 do
    local ok, v = coroutine.resume(co)
    if not ok then last = v break end
  end
  local after = 0
  for i = 1, 1e6 do after = after + 1 end
  return {tostring(last), after}
end}
M.isyieldable = herald.query{handler = function()
  return {coroutine.isyieldable(), coroutine.running() ~= nil,
          coroutine.wrap(function() return coroutine.isyieldable() end)()}
end}
M.wrapError = herald.query{handler = function()
  local co = coroutine.wrap(function() error({code = "X"}) end)
  return {pcall(co)}
end}
M.deadResume = herald.query{handler = function()
  local co = coroutine.create(function() end)
  coroutine.resume(co)
  return {coroutine.resume(co), coroutine.status(co)}
end}
return M
