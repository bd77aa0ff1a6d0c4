-- Collections group artworks in the order their owner chose. A collection
-- belongs to a users document (collections.userId is Id<"users">); it may
-- hold the owner's own artworks, whatever their visibility, and other
-- people's public ones. Readers only ever see the artworks they may see.
local lib = require("lib")

local function owned_collection(ctx, id, identity)
  local c = ctx.db:get(id)
  if not c then lib.fail("NOT_FOUND", "No such collection") end
  local user = lib.find_user(ctx, identity)
  if not user or c.userId ~= user._id then
    lib.fail("FORBIDDEN", "Only the collection's owner may do this")
  end
  return c
end

local function check_addable(ctx, artworkId, identity)
  local artwork = ctx.db:get(artworkId)
  if not artwork then lib.fail("NOT_FOUND", "No such artwork") end
  if artwork.userId ~= identity.subject and artwork.visibility ~= "public" then
    lib.fail("FORBIDDEN", "Only public artworks of other people can be collected")
  end
  return artwork
end

local M = {}

M.create = herald.mutation{
  args = {
    name = v.string(),
    description = v.optional(v.string()),
    visibility = v.optional(v.union(v.literal("public"), v.literal("private"))),
    artworkIds = v.optional(v.array(v.id("artworks"))),
  },
  handler = function(ctx, args)
    local identity = lib.identity(ctx)
    if args.name == "" then lib.fail("INVALID_ARGUMENT", "The name is empty") end
    local user = lib.ensure_user(ctx, identity)
    local ids, seen = herald.array{}, {}
    for _, id in ipairs(args.artworkIds or {}) do
      check_addable(ctx, id, identity)
      if not seen[id] then
        seen[id] = true
        ids[#ids + 1] = id
      end
    end
    local now = lib.now(ctx)
    return ctx.db:insert("collections", {
      userId = user._id,
      name = args.name,
      description = args.description,
      artworkIds = ids,
      visibility = args.visibility or "private",
      createdAt = now,
      updatedAt = now,
    })
  end,
}

M.update = herald.mutation{
  args = {
    id = v.id("collections"),
    name = v.optional(v.string()),
    description = v.optional(v.string()),
    visibility = v.optional(v.union(v.literal("public"), v.literal("private"))),
  },
  handler = function(ctx, args)
    local c = owned_collection(ctx, args.id, lib.identity(ctx))
    if args.name == "" then lib.fail("INVALID_ARGUMENT", "The name is empty") end
    local fields = {updatedAt = lib.now(ctx)}
    lib.set_if(fields, "name", args.name)
    lib.set_if(fields, "description", args.description)
    lib.set_if(fields, "visibility", args.visibility)
    ctx.db:patch(c._id, fields)
    return nil
  end,
}

-- Appends an artwork (once: adding it again changes nothing).
M.addArtwork = herald.mutation{
  args = {collectionId = v.id("collections"), artworkId = v.id("artworks")},
  handler = function(ctx, args)
    local identity = lib.identity(ctx)
    local c = owned_collection(ctx, args.collectionId, identity)
    check_addable(ctx, args.artworkId, identity)
    for _, id in ipairs(c.artworkIds) do
      if id == args.artworkId then return #c.artworkIds end
    end
    local ids = herald.array{}
    for i, id in ipairs(c.artworkIds) do ids[i] = id end
    ids[#ids + 1] = args.artworkId
    ctx.db:patch(c._id, {artworkIds = ids, updatedAt = lib.now(ctx)})
    return #ids
  end,
}

M.removeArtwork = herald.mutation{
  args = {collectionId = v.id("collections"), artworkId = v.id("artworks")},
  handler = function(ctx, args)
    local c = owned_collection(ctx, args.collectionId, lib.identity(ctx))
    local ids = herald.array{}
    for _, id in ipairs(c.artworkIds) do
      if id ~= args.artworkId then ids[#ids + 1] = id end
    end
    ctx.db:patch(c._id, {artworkIds = ids, updatedAt = lib.now(ctx)})
    return #ids
  end,
}

M.remove = herald.mutation{
  args = {id = v.id("collections")},
  handler = function(ctx, args)
    local c = owned_collection(ctx, args.id, lib.identity(ctx))
    ctx.db:delete(c._id)
    return nil
  end,
}

-- The signed-in user's collections, newest first.
M.listMine = herald.query{
  args = {},
  handler = function(ctx)
    local identity = lib.identity(ctx)
    local user = lib.find_user(ctx, identity)
    if not user then return herald.array{} end
    return ctx.db:query("collections")
      :withIndex("by_user", function(q) return q:eq("userId", user._id) end)
      :order("desc"):take(200)
  end,
}

M.listPublic = herald.query{
  args = {limit = v.optional(v.number())},
  handler = function(ctx, args)
    return ctx.db:query("collections")
      :withIndex("by_visibility", function(q) return q:eq("visibility", "public") end)
      :order("desc"):take(lib.limit(args.limit, 50, 200))
  end,
}

-- A collection with its artworks, in order: public collections for
-- anyone, private ones for their owner. Artworks that were removed or
-- that the reader may not see are left out.
M.get = herald.query{
  args = {id = v.id("collections")},
  handler = function(ctx, args)
    local c = ctx.db:get(args.id)
    if not c then return nil end
    local identity = ctx.auth:getUserIdentity()
    if c.visibility ~= "public" then
      local user = identity and lib.find_user(ctx, identity)
      if not user or user._id ~= c.userId then lib.fail("FORBIDDEN", "This collection is private") end
    end
    local artworks = herald.array{}
    for _, id in ipairs(c.artworkIds) do
      local a = ctx.db:get(id)
      if a and lib.may_see(a, identity) then artworks[#artworks + 1] = a end
    end
    c.artworks = artworks
    return c
  end,
}

return M
