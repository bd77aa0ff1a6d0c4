-- Users of the reels app (seed 000): Auth0-backed accounts, created or
-- updated by users:upsert every time the frontend signs someone in.
local A = require("access")

local M = {}

-- Creates or updates the signed-in user's record from the verified JWT
-- identity: auth0Id is the token's subject; email, name and avatar come
-- from the token's claims when it has them, else from the arguments (the
-- Auth0 profile the frontend holds). Returns the user's id.
M.upsert = herald.mutation{
  args = {
    auth0Id = v.optional(v.string()),
    email = v.optional(v.string()),
    name = v.optional(v.string()),
    avatarUrl = v.optional(v.string()),
  },
  returns = v.id("users"),
  handler = function(ctx, args)
    local identity = A.identity(ctx)
    if args.auth0Id and args.auth0Id ~= identity.subject then
      A.fail("FORBIDDEN", "auth0Id must be the signed-in user's own")
    end
    local profile = {
      email = identity.email or args.email,
      name = identity.name or args.name,
      avatarUrl = identity.pictureUrl or args.avatarUrl,
      lastLoginAt = ctx.now,
    }
    local user = A.userByAuth0Id(ctx, identity.subject)
    if user then
      ctx.db:patch(user._id, profile)
      return user._id
    end
    profile.auth0Id = identity.subject
    profile.createdAt = ctx.now
    return ctx.db:insert("users", profile)
  end,
}

-- The signed-in user's own record (nil before the first users:upsert).
M.me = herald.query{
  args = {},
  handler = function(ctx)
    return A.currentUserOrNil(ctx)
  end,
}

-- A user by Auth0 subject: one's own, or any for the admin key.
M.getByAuth0Id = herald.query{
  args = {auth0Id = v.string()},
  handler = function(ctx, args)
    if not A.isAdmin(ctx) and A.identity(ctx).subject ~= args.auth0Id then
      A.fail("FORBIDDEN", "Users can only look up themselves")
    end
    return A.userByAuth0Id(ctx, args.auth0Id)
  end,
}

-- A user by id: one's own, or any for the admin key; nil if there is none.
M.getById = herald.query{
  args = {userId = v.id("users")},
  handler = function(ctx, args)
    if not A.isAdmin(ctx) then
      local me = A.currentUserOrNil(ctx)
      if not me or me._id ~= args.userId then
        A.fail("FORBIDDEN", "Users can only look up themselves")
      end
    end
    return ctx.db:get(args.userId)
  end,
}

return M
