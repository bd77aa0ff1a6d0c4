-- Lua values that are hard to convert: NaN, infinities, -0.0, integer edges, mixed and cyclic tables.
local M = {}
M.numbers = herald.query{handler = function()
  return {0/0, math.huge, -math.huge, -0.0, 0.0, math.maxinteger, math.mininteger, 2^53, 2^53 + 1,
          -2^63, 2^63, 1e-320, 0x7fffffffffffffff, 3 // 1, 7.0}
end}
M.roundtrip = herald.mutation{handler = function(ctx)
  local id = ctx.db:insert("users", {nan = 0/0, inf = math.huge, nz = -0.0, big = math.maxinteger,
                                     small = math.mininteger, f = 2^53 + 0.5})
  return ctx.db:get(id)
end}
M.mixed = herald.query{handler = function() return {1, 2, x = 3} end}
M.cycle = herald.query{handler = function() local t = {} t.self = t return t end}
M.arrayCycle = herald.query{handler = function() local t = {} t[1] = t return t end}
M.functionInside = herald.query{handler = function() return {a = {b = {c = print}}} end}
M.threadInside = herald.query{handler = function() return {coroutine.create(print)} end}
M.keyTypes = herald.query{handler = function() return {[1.5] = 1} end}
M.nulKey = herald.query{handler = function() return {["a\0b"] = 1} end}
M.emptyKey = herald.query{handler = function() return {[""] = {[""] = herald.null}} end}
M.dollarKeys = herald.query{handler = function() return {["$integer"] = "AAAAAAAAAAA=", ["_id"] = 1} end}
M.bytesAsKey = herald.query{handler = function() return {[herald.bytes("k")] = 1} end}
M.sentinelKey = herald.query{handler = function() return {[herald.null] = 1} end}
M.utf8 = herald.query{handler = function() return {"\xff\xfe", "\xc3", utf8.char(0x10ffff), "\u{7FFFFFFF}"} end}
M.insertBadUtf8 = herald.mutation{handler = function(ctx) return {pcall(ctx.db.insert, ctx.db, "users", {name = "\xff"})} end}
return M
