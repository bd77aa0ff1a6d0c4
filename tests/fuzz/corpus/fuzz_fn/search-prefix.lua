-- withSearchIndex: prefix matching on the last term, filters, take/first/collect, ranking.
local M = {}
M.search = herald.query{args = {id = v.optional(v.string()), owner = v.optional(v.string()),
  text = v.optional(v.string()), n = v.optional(v.number())}, handler = function(ctx, a)
  local text = a.text or "prog"
  local all = ctx.db:query("tasks"):withSearchIndex("search_title", function(q)
    return q:search("title", text) end):collect()
  local mine = ctx.db:query("tasks"):withSearchIndex("search_title", function(q)
    return q:search("title", text):eq("owner", a.owner or "ada") end):take(10)
  local done = ctx.db:query("tasks"):withSearchIndex("search_title", function(q)
    q:search("title", "programming lua"):eq("done", true):eq("owner", "ada") end):first()
  local bio = ctx.db:query("users"):withSearchIndex("search_bio", function(q) return q:search("bio", "PROG") end):collect()
  local accents = ctx.db.query("tasks"):withSearchIndex("search_title", function(q)
    return q:search("title", "CAFÉ été zz") end):take(0)
  local many = ctx.db:query("tasks"):withSearchIndex("search_title", function(q)
    return q:search("title", string.rep("a b c d e f g h i j k l m n o p q r s ", 3) .. string.rep("x", 100)) end):collect()
  local empty = ctx.db:query("tasks"):withSearchIndex("search_title", function(q) return q:search("title", "") end):collect()
  return {#all, #mine, done and done.title or herald.null, #bio, #accents, #many, #empty}
end}
return M
