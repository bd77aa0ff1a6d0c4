-- The generation log: every attempt to generate an artwork, its outcome,
-- duration and cost, for the signed-in user or anonymous.
local lib = require("lib")

local M = {}

M.log = herald.mutation{
  args = {
    prompt = v.string(),
    success = v.boolean(),
    error = v.optional(v.string()),
    duration = v.number(),
    model = v.string(),
    cost = v.optional(v.number()),
  },
  handler = function(ctx, args)
    local identity = ctx.auth:getUserIdentity()
    local user = identity and lib.ensure_user(ctx, identity)
    return ctx.db:insert("generations", {
      userId = user and user._id,
      prompt = args.prompt,
      success = args.success,
      error = args.error,
      duration = args.duration,
      model = args.model,
      cost = args.cost,
      createdAt = lib.now(ctx),
    })
  end,
}

M.listMine = herald.query{
  args = {limit = v.optional(v.number())},
  handler = function(ctx, args)
    local user = lib.find_user(ctx, lib.identity(ctx))
    if not user then return herald.array{} end
    return ctx.db:query("generations")
      :withIndex("by_user", function(q) return q:eq("userId", user._id) end)
      :order("desc"):take(lib.limit(args.limit, 50, 500))
  end,
}

-- Recent generations of everyone, for the console.
M.listRecent = herald.internalQuery{
  args = {limit = v.optional(v.number())},
  handler = function(ctx, args)
    return ctx.db:query("generations"):withIndex("by_created"):order("desc")
      :take(lib.limit(args.limit, 50, 500))
  end,
}

return M
