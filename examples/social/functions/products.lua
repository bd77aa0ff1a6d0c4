-- The optional product catalogue of the social app (seed 004): anyone may
-- browse it; only a trusted worker or the console (the admin key) adds to it.
-- A product's image is one the admin key uploaded (media:generateUploadUrl).
local files = require("files")

local function adminOnly(ctx)
  if not ctx.auth:isAdmin() then
    herald.error{code = "FORBIDDEN", message = "Only the admin key can change products"}
  end
end

local M = {}

M.list = herald.query{
  args = {limit = v.optional(v.number())},
  handler = function(ctx, args)
    local limit = math.max(1, math.min(math.floor(args.limit or 50), 200))
    local products = ctx.db:query("products"):withIndex("by_createdAt"):order("desc"):take(limit)
    for _, p in ipairs(products) do
      if p.imageId then p.imageUrl = files.url(ctx, p.imageId) end
    end
    return products
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
    adminOnly(ctx)
    if args.price and args.price < 0 then
      herald.error{code = "INVALID", message = "price must not be negative"}
    end
    if args.imageId then files.attach(ctx, args.imageId, nil, {"image/"}, "imageId") end
    return ctx.db:insert("products", {
      name = args.name,
      description = args.description,
      price = args.price,
      imageId = args.imageId,
      createdAt = ctx.now,
    })
  end,
}

-- Replaces a product's image (or removes it, without imageId); the old
-- image's bytes are deleted.
M.setImage = herald.mutation{
  args = {productId = v.id("products"), imageId = v.optional(v.id("_storage"))},
  handler = function(ctx, args)
    adminOnly(ctx)
    local product = ctx.db:get(args.productId)
    if not product then herald.error{code = "NOT_FOUND", message = "No such product"} end
    if args.imageId == product.imageId then return nil end
    if args.imageId then files.attach(ctx, args.imageId, nil, {"image/"}, "imageId") end
    files.release(ctx, product.imageId)
    ctx.db:patch(product._id, {imageId = args.imageId or herald.unset})
    return nil
  end,
}

return M
