-- Reels of the reels app (seed 000): the pieces of content of a feed, in
-- order of `position`. FastAPI workers and scrapers add them and flip them
-- to `ready` once the video URL exists (admin key); the feed's owner reads
-- them as they scroll.
local A = require("access")

local reelStatus = v.union(v.literal("pending"), v.literal("processing"), v.literal("ready"),
  v.literal("failed"))
local sourceType = v.union(v.literal("generated"), v.literal("scraped"))
local metadata = v.record(v.string(), v.any())

-- Convex's paginationOptsValidator.
local paginationOpts = v.paginationOpts()

local MAX_PAGE = 200

local M = {}

-- Attaches a reel (a placeholder, or a finished one with its video URL) to
-- a feed. Without `position` it goes after the feed's last reel; without
-- `status` it is `ready` when it has a video URL, else `pending`. The first
-- reel moves a `pending` feed to `curating`. Returns the reel's id.
M.addToFeed = herald.mutation{
  args = {
    feedId = v.id("feeds"),
    position = v.optional(v.number()),
    sourceType = sourceType,
    status = v.optional(reelStatus),
    videoUrl = v.optional(v.string()),
    thumbnailUrl = v.optional(v.string()),
    sourceReference = v.optional(v.string()),
    metadata = v.optional(metadata),
  },
  returns = v.id("reels"),
  handler = function(ctx, args)
    local feed = A.feed(ctx, args.feedId)
    local position = args.position
    if position == nil then
      local last = ctx.db:query("reels")
        :withIndex("by_feed_position", function(q) return q:eq("feedId", feed._id) end)
        :order("desc"):first()
      position = last and math.floor(last.position) + 1 or 0
    else
      if position < 0 or position ~= math.floor(position) then
        A.fail("INVALID_ARGUMENT", "position must be a whole number >= 0")
      end
      local taken = ctx.db:query("reels")
        :withIndex("by_feed_position", function(q)
          return q:eq("feedId", feed._id):eq("position", position)
        end)
        :first()
      if taken then
        A.fail("CONFLICT", "Position " .. math.floor(position) .. " of this feed already holds reel " .. taken._id)
      end
    end
    local reel = A.copy({
      feedId = feed._id,
      position = position,
      status = args.status or (args.videoUrl and "ready" or "pending"),
      createdAt = ctx.now,
      updatedAt = ctx.now,
    }, args, {"sourceType", "videoUrl", "thumbnailUrl", "sourceReference", "metadata"})
    local id = ctx.db:insert("reels", reel)
    if feed.status == "pending" then
      ctx.db:patch(feed._id, {status = "curating", updatedAt = ctx.now})
    end
    return id
  end,
}

-- Patches a reel once FastAPI is done with it (e.g. `ready` plus the video
-- URL). Fields left out stay as they are; `metadata` is replaced whole.
M.update = herald.mutation{
  args = {
    reelId = v.id("reels"),
    status = v.optional(reelStatus),
    videoUrl = v.optional(v.string()),
    thumbnailUrl = v.optional(v.string()),
    sourceReference = v.optional(v.string()),
    metadata = v.optional(metadata),
  },
  returns = v.null(),
  handler = function(ctx, args)
    A.reel(ctx, args.reelId)
    ctx.db:patch(args.reelId, A.copy({updatedAt = ctx.now}, args,
      {"status", "videoUrl", "thumbnailUrl", "sourceReference", "metadata"}))
  end,
}

-- One page of a feed's reels in order of position, for scrolling. To resume
-- where the owner stopped, pass the feed's lastSeenIndex as `fromPosition`
-- (and the same value with every later page's cursor).
M.listForFeed = herald.query{
  args = {
    feedId = v.id("feeds"),
    paginationOpts = paginationOpts,
    fromPosition = v.optional(v.number()),
  },
  handler = function(ctx, args)
    local feed = A.feed(ctx, args.feedId)
    local n = args.paginationOpts.numItems
    if n < 1 or n > MAX_PAGE or n ~= math.floor(n) then
      A.fail("INVALID_ARGUMENT", "paginationOpts.numItems must be a whole number from 1 to " .. MAX_PAGE)
    end
    return ctx.db:query("reels")
      :withIndex("by_feed_position", function(q)
        q = q:eq("feedId", feed._id)
        if args.fromPosition then q = q:gte("position", args.fromPosition) end
        return q
      end)
      :paginate{numItems = math.floor(n), cursor = args.paginationOpts.cursor,
                endCursor = args.paginationOpts.endCursor,
                maximumRowsRead = args.paginationOpts.maximumRowsRead,
                maximumBytesRead = args.paginationOpts.maximumBytesRead}
  end,
}

-- One reel, to watch its state; nil if it does not exist, FORBIDDEN if it
-- is in someone else's feed.
M.getById = herald.query{
  args = {reelId = v.id("reels")},
  handler = function(ctx, args)
    if not A.isAdmin(ctx) then A.identity(ctx) end
    local reel = ctx.db:get(args.reelId)
    if not reel then return nil end
    local feed = ctx.db:get(reel.feedId)
    if feed then A.checkFeed(ctx, feed) elseif not A.isAdmin(ctx) then return nil end
    return reel
  end,
}

return M
