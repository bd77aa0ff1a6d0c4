-- Large results: arrays just under and over the 8,192-item limit, wide objects, long strings.
local M = {}
M.under = herald.query{handler = function() local t = {} for i = 1, 8192 do t[i] = i end return t end}
M.over = herald.query{handler = function() local t = {} for i = 1, 8193 do t[i] = i end return t end}
M.wide = herald.query{handler = function() local t = {} for i = 1, 5000 do t["k" .. i] = i end return t end}
M.longString = herald.query{handler = function() return string.rep("s", 4 << 20) end}
M.holes = herald.query{handler = function() local t = {} t[1] = 1 t[3] = 3 return t end}
M.sparse = herald.query{handler = function() return {[1] = 1, [1000000] = 2} end}
M.negative = herald.query{handler = function() return {[0] = 0, [-1] = 1} end}
M.hugeInsert = herald.mutation{handler = function(ctx)
  local tags = {}
  for i = 1, 8192 do tags[i] = "t" .. i end
  local ok1 = pcall(ctx.db.insert, ctx.db, "tasks", {title = "big", owner = "o", priority = 1, tags = tags})
  tags[8193] = "over"
  local ok2 = pcall(ctx.db.insert, ctx.db, "tasks", {title = "big", owner = "o", priority = 1, tags = tags})
  local ok3 = pcall(ctx.db.insert, ctx.db, "users", {body = string.rep("b", 6 << 20)})
  return {ok1, ok2, ok3}
end}
return M
