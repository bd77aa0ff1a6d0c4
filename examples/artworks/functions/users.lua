-- Users are Clerk accounts: the web app calls users:upsert after sign-in
-- (and when Clerk reports a profile change), keyed by the Clerk subject.
local lib = require("lib")

local M = {}

M.upsert = herald.mutation{
  args = {
    email = v.optional(v.string()),
    name = v.optional(v.string()),
    imageUrl = v.optional(v.string()),
  },
  handler = function(ctx, args)
    local identity = lib.identity(ctx)
    -- What the signed token says wins over what the client sends.
    local email = identity.email or args.email
    local name = identity.name or args.name
    local imageUrl = identity.pictureUrl or args.imageUrl
    local user = lib.find_user(ctx, identity)
    local now = lib.now(ctx)
    if not user then
      return ctx.db:insert("users", {
        clerkId = identity.subject,
        email = email or "",
        name = name,
        imageUrl = imageUrl,
        createdAt = now,
        updatedAt = now,
      })
    end
    local fields = {}
    if email and email ~= user.email then fields.email = email end
    if name and name ~= user.name then fields.name = name end
    if imageUrl and imageUrl ~= user.imageUrl then fields.imageUrl = imageUrl end
    if next(fields) then
      fields.updatedAt = now
      ctx.db:patch(user._id, fields)
    end
    return user._id
  end,
}

-- The signed-in user's document, or null (signed out, or never upserted).
M.me = herald.query{
  args = {},
  handler = function(ctx)
    local identity = ctx.auth:getUserIdentity()
    if not identity then return nil end
    return lib.find_user(ctx, identity)
  end,
}

-- A profile as others see it.
M.get = herald.query{
  args = {id = v.id("users")},
  handler = function(ctx, args)
    local user = ctx.db:get(args.id)
    if not user then return nil end
    return {_id = user._id, clerkId = user.clerkId, name = user.name, imageUrl = user.imageUrl}
  end,
}

return M
