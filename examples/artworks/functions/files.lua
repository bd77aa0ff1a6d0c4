-- Uploaded files (seed 001's `files` table): a rendered GIF or video of an
-- artwork, a reference image. The client asks files:generateUploadUrl for
-- a URL, POSTs the bytes there with their Content-Type, gets
-- {"storageId": ...} back and saves it with files:save. The row's
-- mimeType and size are the stored file's, not what the client says.
--
-- Who gets a file's URL: its owner, and whoever may see the artwork it
-- belongs to (public and unlisted: anyone; private: the owner). A file
-- of no artwork is its owner's only. The URL is the only way to the bytes.
local lib = require("lib")

local M = {}

local function by_storage(ctx, storageId)
  return ctx.db:query("files")
    :withIndex("by_storage", function(q) return q:eq("storageId", storageId) end)
    :unique()
end

-- The stored file `storageId`, if no files row holds it yet.
local function fresh_upload(ctx, storageId)
  local meta = ctx.storage:getMetadata(storageId)
  if not meta then lib.fail("NOT_FOUND", "No such file (upload it first)") end
  if by_storage(ctx, storageId) then lib.fail("INVALID_ARGUMENT", "This file is already saved") end
  return meta
end

local function check_filename(name)
  if name == "" or #name > 255 or name:find("[/\0]") then
    lib.fail("INVALID_ARGUMENT", "A filename is 1 to 255 bytes without '/'")
  end
end

-- The caller's files row `id`, or a refusal.
local function owned_file(ctx, id, identity)
  local file = ctx.db:get(id)
  if not file then lib.fail("NOT_FOUND", "No such file") end
  local user = lib.find_user(ctx, identity)
  if not user or file.userId ~= user._id then
    lib.fail("FORBIDDEN", "Only the file's owner may do this")
  end
  return file
end

-- Whether the caller may have file's URL.
local function may_read(ctx, file, identity)
  if identity then
    local user = lib.find_user(ctx, identity)
    if user and file.userId == user._id then return true end
  end
  if not file.artworkId then return false end
  local artwork = ctx.db:get(file.artworkId)
  return artwork ~= nil and lib.may_see(artwork, identity)
end

local function shown(ctx, file)
  file.url = ctx.storage:getUrl(file.storageId)
  return file
end

-- A single-use URL to upload one file to, for signed-in users.
M.generateUploadUrl = herald.mutation{
  args = {},
  handler = function(ctx)
    lib.identity(ctx)
    return ctx.storage:generateUploadUrl()
  end,
}

-- Saves an upload as the caller's file, of one of their artworks or none.
M.save = herald.mutation{
  args = {
    storageId = v.id("_storage"),
    filename = v.string(),
    artworkId = v.optional(v.id("artworks")),
  },
  handler = function(ctx, args)
    local identity = lib.identity(ctx)
    check_filename(args.filename)
    if args.artworkId then lib.owned_artwork(ctx, args.artworkId, identity) end
    local meta = fresh_upload(ctx, args.storageId)
    local user = lib.ensure_user(ctx, identity)
    return ctx.db:insert("files", {
      storageId = args.storageId,
      userId = user._id,
      artworkId = args.artworkId,
      filename = args.filename,
      mimeType = meta.contentType or "application/octet-stream",
      size = meta.size,
      createdAt = lib.now(ctx),
    })
  end,
}

-- One file with its URL, for those who may read it.
M.get = herald.query{
  args = {id = v.id("files")},
  handler = function(ctx, args)
    local file = ctx.db:get(args.id)
    if not file then return nil end
    if not may_read(ctx, file, ctx.auth:getUserIdentity()) then
      lib.fail("FORBIDDEN", "This file is not yours to read")
    end
    return shown(ctx, file)
  end,
}

-- The caller's files with their URLs, newest first.
M.listMine = herald.query{
  args = {limit = v.optional(v.number())},
  handler = function(ctx, args)
    local identity = lib.identity(ctx)
    local user = lib.find_user(ctx, identity)
    if not user then return herald.array{} end
    local mine = ctx.db:query("files")
      :withIndex("by_user", function(q) return q:eq("userId", user._id) end)
      :order("desc")
      :take(lib.limit(args.limit, 50, 200))
    for _, file in ipairs(mine) do shown(ctx, file) end
    return mine
  end,
}

-- An artwork's files with their URLs, for whoever may see the artwork.
M.listForArtwork = herald.query{
  args = {artworkId = v.id("artworks")},
  handler = function(ctx, args)
    local artwork = lib.visible_artwork(ctx, args.artworkId, ctx.auth:getUserIdentity())
    local files = ctx.db:query("files")
      :withIndex("by_artwork", function(q) return q:eq("artworkId", artwork._id) end)
      :take(100)
    for _, file in ipairs(files) do shown(ctx, file) end
    return files
  end,
}

-- Puts a new upload in place of a file's bytes (a re-render): the row
-- keeps its id and artwork, the old bytes are deleted.
M.replace = herald.mutation{
  args = {id = v.id("files"), storageId = v.id("_storage"), filename = v.optional(v.string())},
  handler = function(ctx, args)
    local file = owned_file(ctx, args.id, lib.identity(ctx))
    if args.filename then check_filename(args.filename) end
    local meta = fresh_upload(ctx, args.storageId)
    ctx.storage:delete(file.storageId)
    ctx.db:patch(file._id, {
      storageId = args.storageId,
      filename = args.filename or file.filename,
      mimeType = meta.contentType or "application/octet-stream",
      size = meta.size,
    })
    return nil
  end,
}

-- Deletes a file: its row and its bytes.
M.remove = herald.mutation{
  args = {id = v.id("files")},
  handler = function(ctx, args)
    local file = owned_file(ctx, args.id, lib.identity(ctx))
    ctx.storage:delete(file.storageId)
    ctx.db:delete(file._id)
    return nil
  end,
}

return M
