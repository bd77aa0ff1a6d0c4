-- Stored files of the social app (seed 004): avatars, post media, message
-- attachments and product images are `_storage` ids the caller uploaded
-- through media:generateUploadUrl. The helpers every module shares
-- through require("files"); nothing here is callable from outside.
--
-- A file belongs to the one document that first names it: the mutation
-- that attaches it writes an `uploads` row (not in the seed's schema; see
-- README.md), and refuses an id that already has one. Without that, user
-- B could name A's post image as his avatar and, by replacing the avatar,
-- delete A's image. A fresh id is known only to whoever uploaded it (ids
-- hold 16 random bytes), so "first to attach" is the uploader.
--
-- Letting go of a file (replacing an avatar, deleting a post) deletes its
-- row and its bytes in the same mutation: Herald removes the bytes once
-- the mutation commits, so a rolled-back mutation keeps them.
local F = {}

local function byStorageId(ctx, storageId)
  return ctx.db:query("uploads")
    :withIndex("by_storageId", function(q) return q:eq("storageId", storageId) end)
    :unique()
end

-- Checks that `storageId` is a stored file no document holds yet, whose
-- content type starts with one of `kinds` ({"image/"}, or nil for any),
-- and marks it as held; `ownerId` is the uploader (nil for the admin key).
-- Returns the file's metadata.
function F.attach(ctx, storageId, ownerId, kinds, what)
  local meta = ctx.storage:getMetadata(storageId)
  if not meta then
    herald.error{code = "NOT_FOUND", message = what .. ": no such file (upload it first)"}
  end
  if kinds then
    local ct, fits = meta.contentType or "", false
    for _, prefix in ipairs(kinds) do
      if ct:sub(1, #prefix) == prefix then fits = true end
    end
    if not fits then
      herald.error{code = "INVALID", message = what .. " must be " .. table.concat(kinds, " or ")
        .. "*, not " .. (meta.contentType or "a file without a content type")}
    end
  end
  if byStorageId(ctx, storageId) then
    herald.error{code = "INVALID", message = what .. ": this file is already in use"}
  end
  ctx.db:insert("uploads", {storageId = storageId, ownerId = ownerId, createdAt = ctx.now})
  return meta
end

-- Whether a document holds file `storageId`.
function F.held(ctx, storageId)
  return byStorageId(ctx, storageId) ~= nil
end

-- Lets go of a file a document held: its uploads row, and its bytes.
function F.release(ctx, storageId)
  if storageId == nil then return end
  local held = byStorageId(ctx, storageId)
  if held then ctx.db:delete(held._id) end
  ctx.storage:delete(storageId)
end

-- The URL that serves file `storageId` (nil for nil, or a file that is gone).
function F.url(ctx, storageId)
  if storageId == nil then return nil end
  return ctx.storage:getUrl(storageId)
end

-- The URLs of `ids`, in their order (a JSON array, empty included).
function F.urls(ctx, ids)
  local out = herald.array{}
  for i, id in ipairs(ids) do out[i] = ctx.storage:getUrl(id) or herald.null end
  return out
end

-- Deletes a fresh upload that no document holds (a client that uploaded
-- and then gave up). One held by a document is refused: it goes with it.
function F.discard(ctx, storageId)
  if byStorageId(ctx, storageId) then
    herald.error{code = "FORBIDDEN", message = "this file belongs to a document; delete that instead"}
  end
  ctx.storage:delete(storageId)
end

return F
