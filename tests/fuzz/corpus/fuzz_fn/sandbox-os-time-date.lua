-- os.time/date/clock at the call's fixed time; date formats good and bad.
local M = {}
M.time = herald.query{handler = function(ctx)
  local r = {os.time(), ctx.now, os.date("%Y-%m-%d %H:%M:%S"), os.date("!%c"), os.date(), type(os.clock())}
  local t = os.date("*t")
  r[#r + 1] = t.year
  r[#r + 1] = os.date("!*t", 0).year
  for _, fmt in ipairs({"%Ez", "%", "%Q", "%5", string.rep("%c", 300), "%Ec", "%Oy", "\0%Y"}) do
    r[#r + 1] = {pcall(os.date, fmt)}
  end
  r[#r + 1] = {pcall(os.date, "%c", 2^62)}
  r[#r + 1] = {pcall(os.date, "%c", -2^62)}
  r[#r + 1] = {pcall(os.date, "%c", 0/0)}
  r[#r + 1] = {pcall(os.date, "%c", "x")}
  r[#r + 1] = {pcall(os.time, {})}
  return r
end}
M.nowInMutation = herald.mutation{handler = function(ctx)
  return ctx.db:insert("events", {kind = "click", x = ctx.now + os.time()})
end}
local loadTime = os.time()
M.loadTime = herald.query{handler = function() return loadTime end}
return M
