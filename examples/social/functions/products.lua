-- The optional product catalogue of the social app (seed 004): anyone may
-- browse it; only a trusted worker or the console (the admin key) adds to it.
local M = {}

M.list = herald.query{
  args = {limit = v.optional(v.number())},
  handler = function(ctx, args)
    local limit = math.max(1, math.min(math.floor(args.limit or 50), 200))
    return ctx.db:query("products"):withIndex("by_createdAt"):order("desc"):take(limit)
  end,
}

M.create = herald.mutation{
  args = {
    name = v.string(),
    description = v.optional(v.string()),
    price = v.optional(v.number()),
    imageId = v.optional(v.id("_storage")),
  },
  handler = function(ctx, args)
    if not ctx.auth:isAdmin() then
      herald.error{code = "FORBIDDEN", message = "Only the admin key can add products"}
    end
    if args.price and args.price < 0 then
      herald.error{code = "INVALID", message = "price must not be negative"}
    end
    return ctx.db:insert("products", {
      name = args.name,
      description = args.description,
      price = args.price,
      imageId = args.imageId,
      createdAt = ctx.now,
    })
  end,
}

return M
