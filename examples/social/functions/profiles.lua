-- Profiles of the social app (seed 004): one per Better Auth user, keyed
-- by the user id (the JWT subject) through the by_userId index.
local access = require("access")

local function byUserId(ctx, userId)
  return ctx.db:query("profiles")
    :withIndex("by_userId", function(q) return q:eq("userId", userId) end)
    :first()
end

-- The first string after every string that starts with `prefix`, in the
-- bytewise (= code point) order of the index; nil when there is none.
local function prefixEnd(prefix)
  local cps = {}
  for _, cp in utf8.codes(prefix) do cps[#cps + 1] = cp end
  while #cps > 0 do
    local last = table.remove(cps) + 1
    if last == 0xD800 then last = 0xE000 end -- surrogates are not characters
    if last <= 0x10FFFF then
      cps[#cps + 1] = last
      return utf8.char(table.unpack(cps))
    end
  end
  return nil
end

local M = {}

-- Creates the caller's profile, or updates it: calling it twice keeps one
-- profile. Fields left out of an update keep their value, except that
-- `bio` and `avatarId` can be cleared with clearBio / clearAvatar.
M.upsertMine = herald.mutation{
  args = {
    displayName = v.string(),
    bio = v.optional(v.string()),
    avatarId = v.optional(v.id("_storage")),
    clearBio = v.optional(v.boolean()),
    clearAvatar = v.optional(v.boolean()),
  },
  handler = function(ctx, args)
    local me = access.userId(ctx)
    access.nonEmpty(args.displayName, "displayName", 100)
    if args.bio then access.nonEmpty(args.bio, "bio", 2000) end
    local existing = byUserId(ctx, me)
    if existing then
      local fields = {displayName = args.displayName, updatedAt = ctx.now}
      if args.bio ~= nil then fields.bio = args.bio elseif args.clearBio then fields.bio = herald.unset end
      if args.avatarId ~= nil then
        fields.avatarId = args.avatarId
      elseif args.clearAvatar then
        fields.avatarId = herald.unset
      end
      ctx.db:patch(existing._id, fields)
      return existing._id
    end
    return ctx.db:insert("profiles", {
      userId = me,
      displayName = args.displayName,
      bio = args.bio,
      avatarId = args.avatarId,
      createdAt = ctx.now,
      updatedAt = ctx.now,
    })
  end,
}

-- The caller's profile; null when signed out or not created yet.
M.getMine = herald.query{
  args = {},
  handler = function(ctx)
    local me = access.maybeUserId(ctx)
    if not me then return nil end
    return byUserId(ctx, me)
  end,
}

M.getByUserId = herald.query{
  args = {userId = v.string()},
  handler = function(ctx, args)
    return byUserId(ctx, args.userId)
  end,
}

-- Profiles whose displayName starts with `prefix` (case-sensitive, as the
-- index orders them), in displayName order: a range of by_displayName,
-- so only the matching entries are read.
M.searchByDisplayName = herald.query{
  args = {prefix = v.string(), limit = v.optional(v.number())},
  handler = function(ctx, args)
    local limit = math.max(1, math.min(math.floor(args.limit or 20), 100))
    local upper = prefixEnd(args.prefix)
    return ctx.db:query("profiles")
      :withIndex("by_displayName", function(q)
        q = q:gte("displayName", args.prefix)
        if upper then q = q:lt("displayName", upper) end
        return q
      end)
      :take(limit)
  end,
}

return M
