local M = {}
M.byOwner = herald.query{
  args = {owner = v.optional(v.string())},
  handler = function(ctx, args)
    local owner = args.owner or "ada"
    local all = ctx.db:query("tasks")
      :withIndex("by_owner", function(q) return q:eq("owner", owner) end):collect()
    local first = ctx.db:query("tasks")
      :withIndex("by_owner", function(q) return q:eq("owner", owner) end):first()
    local two = ctx.db:query("tasks")
      :withIndex("by_owner", function(q) return q:eq("owner", owner) end):take(2)
    local ok, one = pcall(function()
      return ctx.db:query("tasks")
        :withIndex("by_owner", function(q) return q:eq("owner", owner) end):unique()
    end)
    return {n = #all, first = first and first.title or herald.null, two = #two, unique = ok}
  end,
}
return M
