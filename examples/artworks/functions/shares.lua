-- Share links: the owner of an artwork (of any visibility) makes a code;
-- whoever opens the link sees the artwork, until the link expires
-- (expiresAt, an ISO date) or has been opened maxViews times.
local lib = require("lib")

local M = {}

-- 16 characters of base64url: 96 random bits.
local CODE_LENGTH = 16

M.create = herald.mutation{
  args = {
    artworkId = v.id("artworks"),
    expiresAt = v.optional(v.string()),
    maxViews = v.optional(v.number()),
  },
  handler = function(ctx, args)
    local identity = lib.identity(ctx)
    local artwork = lib.owned_artwork(ctx, args.artworkId, identity)
    local expiresAt = args.expiresAt
    if expiresAt then
      local ms = lib.parse_iso(expiresAt)
      if not ms then
        lib.fail("INVALID_ARGUMENT", "expiresAt must be an ISO 8601 date-time with a zone, e.g. 2030-01-31T12:00:00.000Z")
      end
      expiresAt = lib.iso(ms) -- stored in one form: UTC with milliseconds
    end
    if args.maxViews and (args.maxViews < 1 or args.maxViews ~= math.floor(args.maxViews)) then
      lib.fail("INVALID_ARGUMENT", "maxViews must be a whole number >= 1")
    end
    local code
    repeat
      code = herald.token():sub(1, CODE_LENGTH)
    until not ctx.db:query("shares")
      :withIndex("by_share_code", function(q) return q:eq("shareCode", code) end):first()
    local id = ctx.db:insert("shares", {
      artworkId = artwork._id,
      shareCode = code,
      expiresAt = expiresAt,
      maxViews = args.maxViews,
      viewCount = 0,
      createdAt = lib.now(ctx),
    })
    return {_id = id, shareCode = code}
  end,
}

-- Opens a share link (signed in or not): counts the view and returns the
-- artwork. Expired links and links used up are refused.
M.open = herald.mutation{
  args = {shareCode = v.string()},
  handler = function(ctx, args)
    local share = ctx.db:query("shares")
      :withIndex("by_share_code", function(q) return q:eq("shareCode", args.shareCode) end)
      :first()
    if not share then
      lib.fail("NOT_FOUND", "No such share link")
    end
    if share.expiresAt and lib.parse_iso(share.expiresAt) <= ctx.now then
      lib.fail("SHARE_EXPIRED", "This share link has expired")
    end
    if share.maxViews and share.viewCount >= share.maxViews then
      lib.fail("SHARE_EXHAUSTED", "This share link has been used up")
    end
    local artwork = ctx.db:get(share.artworkId)
    if not artwork then lib.fail("NOT_FOUND", "The shared artwork was removed") end
    ctx.db:patch(share._id, {viewCount = share.viewCount + 1})
    artwork.views = (artwork.views or 0) + 1
    ctx.db:patch(artwork._id, {views = artwork.views})
    return artwork
  end,
}

-- The links made for an artwork, for its owner.
M.listForArtwork = herald.query{
  args = {artworkId = v.id("artworks")},
  handler = function(ctx, args)
    local identity = lib.identity(ctx)
    local artwork = lib.owned_artwork(ctx, args.artworkId, identity)
    return ctx.db:query("shares")
      :withIndex("by_artwork", function(q) return q:eq("artworkId", artwork._id) end)
      :order("desc"):collect()
  end,
}

M.revoke = herald.mutation{
  args = {id = v.id("shares")},
  handler = function(ctx, args)
    local identity = lib.identity(ctx)
    local share = ctx.db:get(args.id)
    if not share then lib.fail("NOT_FOUND", "No such share link") end
    lib.owned_artwork(ctx, share.artworkId, identity)
    ctx.db:delete(share._id)
    return nil
  end,
}

return M
