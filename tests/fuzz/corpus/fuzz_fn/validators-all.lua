-- Every v.* validator as args and as returns.
local M = {}
local all = v.object{
  s = v.optional(v.string()), n = v.optional(v.number()), f = v.optional(v.float64()),
  i = v.optional(v.int64()), bi = v.optional(v.bigint()), b = v.optional(v.boolean()),
  z = v.optional(v.null()), by = v.optional(v.bytes()), a = v.optional(v.any()),
  id = v.optional(v.id("tasks")), lit = v.optional(v.literal("x")), litn = v.optional(v.literal(1)),
  arr = v.optional(v.array(v.string())), obj = v.optional(v.object{x = v.number()}),
  rec = v.optional(v.record(v.string(), v.number())),
  u = v.optional(v.union(v.string(), v.number(), v.null())), nl = v.optional(v.nullable(v.string())),
}
M.check = herald.query{args = {id = v.optional(v.id("tasks")), owner = v.optional(v.string()),
  text = v.optional(v.string()), n = v.optional(v.union(v.number(), v.int64()))}, returns = all, handler = function(ctx, a)
  return {s = "s", n = 1.5, f = 2, i = 3, bi = herald.int64(4), b = true, z = herald.null,
          by = herald.bytes("b"), a = {1, {x = 2}}, id = a.id, lit = "x", litn = 1, arr = {},
          obj = {x = 1}, rec = {k = 1, j = 2}, u = herald.null, nl = "s"}
end}
M.any = herald.query{args = v.object{}, returns = v.any(), handler = function(ctx, a) return a end}
M.arrayArgs = herald.query{args = v.any(), returns = v.record(v.string(), v.any()), handler = function(ctx, a) return a end}
M.badDefs = herald.query{handler = function()
  local r = {}
  for _, f in ipairs({function() return v.array(5) end, function() return v.object(5) end,
                      function() return v.object{x = 5} end, function() return v.record(v.string()) end,
                      function() return v.union(v.string(), 3) end, function() return v.optional("x") end,
                      function() return v.id(5) end, function() return v.literal({}) end,
                      function() return herald.query(5) end, function() return herald.mutation{} end,
                      function() return herald.query{handler = print, returns = 5} end}) do
    r[#r + 1] = (pcall(f))
  end
  return r
end}
return M
