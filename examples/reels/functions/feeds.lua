-- Feeds of the reels app (seed 000): a saved prompt/session of one user,
-- filled with reels by the FastAPI orchestrator.
local A = require("access")

local feedStatus = v.union(v.literal("pending"), v.literal("curating"), v.literal("ready"),
  v.literal("archived"))

local M = {}

-- A new feed for the signed-in user, in `pending` status until reels
-- arrive. Returns its id.
M.create = herald.mutation{
  args = {
    prompt = v.string(),
    topic = v.optional(v.string()),
    description = v.optional(v.string()),
    tags = v.optional(v.array(v.string())),
  },
  returns = v.id("feeds"),
  handler = function(ctx, args)
    local user = A.currentUser(ctx)
    if not args.prompt:find("%S") then A.fail("INVALID_ARGUMENT", "The prompt is empty") end
    return ctx.db:insert("feeds", {
      userId = user._id,
      prompt = args.prompt,
      topic = args.topic,
      description = args.description,
      tags = args.tags or herald.array{},
      status = "pending",
      createdAt = ctx.now,
      updatedAt = ctx.now,
    })
  end,
}

-- The signed-in user's feeds for the dashboard, newest first, optionally
-- only those in one status. The admin key names the user with `userId`.
M.listByUser = herald.query{
  args = {status = v.optional(feedStatus), userId = v.optional(v.id("users"))},
  handler = function(ctx, args)
    local userId = args.userId
    if not A.isAdmin(ctx) then
      local me = A.currentUserOrNil(ctx)
      if userId and (not me or me._id ~= userId) then
        A.fail("FORBIDDEN", "Users can only list their own feeds")
      end
      if not me then return herald.array{} end -- signed in, not stored yet: no feeds
      userId = me._id
    elseif not userId then
      A.fail("INVALID_ARGUMENT", "With the admin key, say whose feeds: userId")
    end
    local q = ctx.db:query("feeds")
    if args.status then
      q = q:withIndex("by_user_status", function(r) return r:eq("userId", userId):eq("status", args.status) end)
    else
      q = q:withIndex("by_user", function(r) return r:eq("userId", userId) end)
    end
    return q:order("desc"):collect()
  end,
}

-- One feed (its status and where its owner stopped scrolling); nil if it
-- does not exist, FORBIDDEN if it is someone else's.
M.getById = herald.query{
  args = {feedId = v.id("feeds")},
  handler = function(ctx, args)
    if not A.isAdmin(ctx) then A.identity(ctx) end
    local feed = ctx.db:get(args.feedId)
    if feed then A.checkFeed(ctx, feed) end
    return feed
  end,
}

-- The lifecycle of a feed, as the orchestrator pulls content together
-- (admin key) or as its owner archives it.
M.updateStatus = herald.mutation{
  args = {feedId = v.id("feeds"), status = feedStatus},
  returns = v.null(),
  handler = function(ctx, args)
    A.feed(ctx, args.feedId)
    ctx.db:patch(args.feedId, {status = args.status, updatedAt = ctx.now})
  end,
}

-- Where the owner stopped scrolling, to resume later: the last reel seen
-- and/or its index (the reel's position when only the reel is given).
M.updateProgress = herald.mutation{
  args = {
    feedId = v.id("feeds"),
    lastSeenReelId = v.optional(v.id("reels")),
    lastSeenIndex = v.optional(v.number()),
  },
  returns = v.null(),
  handler = function(ctx, args)
    A.feed(ctx, args.feedId)
    if args.lastSeenReelId == nil and args.lastSeenIndex == nil then
      A.fail("INVALID_ARGUMENT", "Give lastSeenReelId, lastSeenIndex or both")
    end
    if args.lastSeenIndex and args.lastSeenIndex < 0 then
      A.fail("INVALID_ARGUMENT", "lastSeenIndex must be >= 0")
    end
    -- An index alone forgets the reel id, which could name another reel.
    local fields = {lastSeenReelId = herald.unset, lastSeenIndex = args.lastSeenIndex, updatedAt = ctx.now}
    if args.lastSeenReelId then
      local reel = ctx.db:get(args.lastSeenReelId)
      if not reel or reel.feedId ~= args.feedId then
        A.fail("INVALID_ARGUMENT", "Reel " .. args.lastSeenReelId .. " is not in this feed")
      end
      fields.lastSeenReelId = reel._id
      fields.lastSeenIndex = args.lastSeenIndex or reel.position
    end
    ctx.db:patch(args.feedId, fields)
  end,
}

return M
