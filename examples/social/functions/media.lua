-- Uploading files in the social app (seed 004). A client asks for an
-- upload URL, POSTs the bytes there (with their Content-Type), gets
-- {"storageId": ...} back, and hands the id to the mutation that uses it:
-- profiles:upsertMine {avatarId}, posts:create {mediaIds},
-- messages:send {mediaId}, products:create / products:setImage {imageId}.
local access = require("access")
local files = require("files")

local M = {}

-- A short-lived, single-use URL to upload one file to: signed-in users
-- (and the admin key, for product images) only.
M.generateUploadUrl = herald.mutation{
  args = {},
  handler = function(ctx)
    if not ctx.auth:isAdmin() then access.userId(ctx) end
    return ctx.storage:generateUploadUrl()
  end,
}

-- Deletes an upload that was never attached to anything (the user gave
-- up before posting). A file a document holds goes with that document.
M.discard = herald.mutation{
  args = {storageId = v.id("_storage")},
  handler = function(ctx, args)
    if not ctx.auth:isAdmin() then access.userId(ctx) end
    files.discard(ctx, args.storageId)
    return nil
  end,
}

-- For the console and a cleanup job (the admin key): the stored files
-- (ctx.db.system reads `_storage`), newest first, each with `held`:
-- whether a document holds it. Those not held are uploads nobody
-- attached, for media:discard.
M.storedFiles = herald.internalQuery{
  args = {limit = v.optional(v.number())},
  handler = function(ctx, args)
    local limit = math.max(1, math.min(math.floor(args.limit or 100), 1000))
    local stored = ctx.db.system:query("_storage"):order("desc"):take(limit)
    for _, file in ipairs(stored) do file.held = files.held(ctx, file._id) end
    return stored
  end,
}

return M
