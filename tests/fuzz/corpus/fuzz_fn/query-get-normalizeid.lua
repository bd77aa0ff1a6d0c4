-- ctx.db:get and normalizeId with real ids, ids of other tables, malformed and odd strings.
local M = {}
M.get = herald.query{args = {id = v.optional(v.string()), owner = v.optional(v.string()),
  text = v.optional(v.string()), n = v.optional(v.number())}, handler = function(ctx, a)
  local t = ctx.db:query("tasks"):first()
  local out = {}
  for _, id in ipairs({a.id or "", t._id, t._id:upper(), t._id .. "x", t._id:sub(1, 31),
                       string.rep("z", 32), "\0", "", ("a"):rep(1000)}) do
    local ok, doc = pcall(ctx.db.get, ctx.db, id)
    out[#out + 1] = {ok = ok, found = ok and doc ~= nil,
                     tasks = ctx.db:normalizeId("tasks", id) or herald.null,
                     users = ctx.db:normalizeId("users", id) or herald.null,
                     nope = ctx.db:normalizeId("nope", id) or herald.null}
  end
  out[#out + 1] = {pcall(ctx.db.get, ctx.db, 42)}
  out[#out + 1] = {pcall(ctx.db.get, ctx.db, nil)}
  out[#out + 1] = {pcall(ctx.db.get, ctx.db, {})}
  out[#out + 1] = ctx.db:normalizeId("tasks", 5) or herald.null
  out[#out + 1] = {pcall(ctx.db.normalizeId, ctx.db, nil, t._id)}
  return herald.array(out)
end}
return M
