-- Search ranking ties: equal term counts and creation times, ordering by occurrences, many hits.
local M = {}
M.ties = herald.mutation{handler = function(ctx)
  for i = 1, 30 do
    ctx.db:insert("tasks", {title = (i % 3 == 0) and "alpha beta alpha" or "alpha beta", owner = "t", priority = i, tags = {}})
  end
  local same = ctx.db:query("tasks"):withSearchIndex("search_title", function(q) return q:search("title", "alpha beta") end):collect()
  local owner = ctx.db:query("tasks"):withSearchIndex("search_title", function(q) return q:search("title", "ALPHA"):eq("owner", "t") end):take(5)
  local prefix = ctx.db:query("tasks"):withSearchIndex("search_title", function(q) return q:search("title", "be") end):first()
  local nothing = ctx.db:query("tasks"):withSearchIndex("search_title", function(q) return q:search("title", "!!! ,,, ...") end):collect()
  local bio = ctx.db:query("users"):withSearchIndex("search_bio", function(q) return q:search("bio", "writes PROGRAMS programs") end):collect()
  ctx.db:insert("users", {bio = 5})
  local bio2 = ctx.db:query("users"):withSearchIndex("search_bio", function(q) return q:search("bio", "p") end):collect()
  return {#same, same[1].title, #owner, prefix and prefix.title or herald.null, #nothing, #bio, #bio2}
end}
return M
