-- Profiles of the social app (seed 004): one per Better Auth user, keyed
-- by the user id (the JWT subject) through the by_userId index.
local access = require("access")
local files = require("files")

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

-- A profile as the app shows it: the document and its avatar's URL.
local function shown(ctx, profile)
  if profile and profile.avatarId then profile.avatarUrl = files.url(ctx, profile.avatarId) end
  return profile
end

local M = {}

-- Creates the caller's profile, or updates it: calling it twice keeps one
-- profile. Fields left out of an update keep their value, except that
-- `bio` and `avatarId` can be cleared with clearBio / clearAvatar. The
-- avatar is an image the caller uploaded (media:generateUploadUrl); a new
-- one, or clearAvatar, deletes the old one's bytes.
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
    local newAvatar = args.avatarId ~= nil and (not existing or args.avatarId ~= existing.avatarId)
    if newAvatar then files.attach(ctx, args.avatarId, me, {"image/"}, "avatarId") end
    if existing then
      local fields = {displayName = args.displayName, updatedAt = ctx.now}
      if args.bio ~= nil then fields.bio = args.bio elseif args.clearBio then fields.bio = herald.unset end
      if newAvatar then
        fields.avatarId = args.avatarId
        files.release(ctx, existing.avatarId)
      elseif args.avatarId == nil and args.clearAvatar and existing.avatarId then
        fields.avatarId = herald.unset
        files.release(ctx, existing.avatarId)
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

-- The caller's profile (with avatarUrl when it has an avatar); null when
-- signed out or not created yet.
M.getMine = herald.query{
  args = {},
  handler = function(ctx)
    local me = access.maybeUserId(ctx)
    if not me then return nil end
    return shown(ctx, byUserId(ctx, me))
  end,
}

-- Profiles are public, avatars included.
M.getByUserId = herald.query{
  args = {userId = v.string()},
  handler = function(ctx, args)
    return shown(ctx, byUserId(ctx, args.userId))
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
    local found = ctx.db:query("profiles")
      :withIndex("by_displayName", function(q)
        q = q:gte("displayName", args.prefix)
        if upper then q = q:lt("displayName", upper) end
        return q
      end)
      :take(limit)
    for _, profile in ipairs(found) do shown(ctx, profile) end
    return found
  end,
}

return M
