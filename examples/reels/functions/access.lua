-- Who may do what in the reels app (seed 000), shared by users.lua,
-- feeds.lua and reels.lua through require("access"). A library module: it
-- defines no callable functions.
--
-- The rules:
--   * a signed-in user (an Auth0 JWT) sees and changes only their own user
--     record, feeds and reels;
--   * the FastAPI workers and scrapers call with the admin key and may read
--     and write any feed and reel (ctx.auth:isAdmin());
--   * anonymous callers are refused everywhere.
-- A refusal is always a herald.error with a stable `code`, which reaches the
-- caller as the error's data: UNAUTHENTICATED (nobody signed in),
-- USER_NOT_FOUND (signed in but users:upsert never ran), FORBIDDEN (someone
-- else's record), NOT_FOUND (no such feed or reel, in a mutation) and
-- INVALID_ARGUMENT (arguments that pass the validators but make no sense).

local A = {}

function A.fail(code, message)
  herald.error{code = code, message = message}
end

function A.isAdmin(ctx)
  return ctx.auth:isAdmin()
end

-- The caller's verified identity; refuses anonymous callers.
function A.identity(ctx)
  local identity = ctx.auth:getUserIdentity()
  if not identity then A.fail("UNAUTHENTICATED", "Sign in first") end
  return identity
end

function A.userByAuth0Id(ctx, auth0Id)
  return ctx.db:query("users")
    :withIndex("by_auth0_id", function(q) return q:eq("auth0Id", auth0Id) end)
    :first()
end

-- The signed-in caller's user record, or nil when users:upsert has not run
-- yet. Refuses anonymous callers.
function A.currentUserOrNil(ctx)
  return A.userByAuth0Id(ctx, A.identity(ctx).subject)
end

-- The signed-in caller's user record; refuses anonymous callers and users
-- that were never stored.
function A.currentUser(ctx)
  local user = A.currentUserOrNil(ctx)
  if not user then A.fail("USER_NOT_FOUND", "No user record yet: call users:upsert after signing in") end
  return user
end

-- Checks that the caller may touch `feed` (a document): the admin, or the
-- signed-in owner. Anything else is FORBIDDEN.
function A.checkFeed(ctx, feed)
  if A.isAdmin(ctx) then return end
  local user = A.currentUserOrNil(ctx)
  if not user or user._id ~= feed.userId then
    A.fail("FORBIDDEN", "This feed belongs to another user")
  end
end

-- The feed `feedId` if the caller may touch it; NOT_FOUND when it does not
-- exist (anonymous callers are refused first, so nobody learns about ids
-- without signing in).
function A.feed(ctx, feedId)
  if not A.isAdmin(ctx) then A.identity(ctx) end
  local feed = ctx.db:get(feedId)
  if not feed then A.fail("NOT_FOUND", "No such feed: " .. feedId) end
  A.checkFeed(ctx, feed)
  return feed
end

-- The reel `reelId` and its feed, if the caller may touch them.
function A.reel(ctx, reelId)
  if not A.isAdmin(ctx) then A.identity(ctx) end
  local reel = ctx.db:get(reelId)
  if not reel then A.fail("NOT_FOUND", "No such reel: " .. reelId) end
  local feed = ctx.db:get(reel.feedId)
  if not feed then A.fail("NOT_FOUND", "The feed of reel " .. reelId .. " is gone") end
  A.checkFeed(ctx, feed)
  return reel, feed
end

-- Copies the fields of `src` named in `names` that are present into `dst`.
function A.copy(dst, src, names)
  for _, k in ipairs(names) do
    if src[k] ~= nil then dst[k] = src[k] end
  end
  return dst
end

return A
