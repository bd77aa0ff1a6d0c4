-- Documents that do not match the schema, and the array/object and integer/float hints.
local M = {}
M.bad = herald.mutation{handler = function(ctx)
  local r = {}
  local function try(t, d) local ok, e = pcall(ctx.db.insert, ctx.db, t, d) r[#r + 1] = ok or tostring(e) end
  try("tasks", {title = 1, owner = "o", priority = 1, tags = {}})
  try("tasks", {title = "t", owner = "o", priority = 1, tags = {1}})
  try("tasks", {title = "t", owner = "o", priority = 1, tags = {}, extra = 1})
  try("tasks", {title = "t", owner = "o", priority = 1, tags = {}, count = 1.5})
  try("tasks", {title = "t", owner = "o", priority = 1, tags = {}, count = herald.int64(1)})
  try("tasks", {title = "t", owner = "o", priority = herald.int64(1), tags = {}})
  try("tasks", {title = "t", owner = "o", priority = 1, tags = {}, meta = {}})
  try("tasks", {title = "t", owner = "o", priority = 1, tags = {}, meta = herald.array{}})
  try("tasks", {title = "t", owner = "o", priority = 1, tags = {}, user = "x"})
  try("tasks", {title = "t", owner = "o", priority = 1, tags = {}, blob = "raw string"})
  try("events", {kind = "click"})
  try("events", {kind = "note", body = "b", refs = {ctx.db:query("tasks"):first()._id}})
  try("events", {kind = "note", body = "b", refs = {ctx.db:query("users"):first()._id}})
  try("events", {kind = "other"})
  try("users", {1, 2, 3})
  try("users", {x = print})
  try("users", {[1.5] = 1})
  try("users", {[true] = 1})
  try("nope", {})
  try("tasks", nil)
  return r
end}
return M
