-- herald.int64: arithmetic, comparisons, overflow edges, concatenation, storage in an int64 field.
local M = {}
M.arith = herald.query{handler = function(ctx)
  local a, b = herald.int64(7), herald.int64(math.maxinteger)
  local r = {(a + 1).value, (a * a).value, (b + 1).value, (-herald.int64(math.mininteger)).value,
             (herald.int64(math.mininteger) // -1).value, (a % 3).value, (a // 2).value,
             a < b, a <= 7, a == herald.int64(7), tostring(a), "n=" .. a, a .. "!"}
  for _, f in ipairs({function() return a + 1.5 end, function() return a % 0 end,
                      function() return a // 0 end, function() return a + "1" end,
                      function() return herald.int64(1.5) end, function() return herald.int64("1") end,
                      function() return a < 1.5 end, function() return a .. {} end,
                      function() return a / 2 end, function() return a ^ 2 end, function() return a & 1 end}) do
    local ok, e = pcall(f)
    r[#r + 1] = ok and "ok" or tostring(e)
  end
  local t = ctx.db:query("tasks"):withIndex("by_count", function(q) return q:gte("count", herald.int64(0)) end):collect()
  r[#r + 1] = #t
  r[#r + 1] = t[1] and t[1].count + herald.int64(1) or herald.null
  return r
end}
M.store = herald.mutation{returns = v.int64(), handler = function(ctx)
  local id = ctx.db:insert("tasks", {title = "n", owner = "o", priority = 1, tags = {}, count = math.maxinteger})
  local doc = ctx.db:get(id)
  ctx.db:patch(id, {count = doc.count - 1})
  local spoof = herald.int64(1)
  spoof.value = "12"
  local ok1 = pcall(ctx.db.patch, ctx.db, id, {count = spoof})
  spoof.value = {}
  local ok2 = pcall(ctx.db.patch, ctx.db, id, {count = spoof})
  spoof.value = 2.0
  local ok3 = pcall(ctx.db.patch, ctx.db, id, {count = spoof})
  return ctx.db:get(id).count
end}
return M
