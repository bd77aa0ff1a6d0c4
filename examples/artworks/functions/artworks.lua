-- Artworks: animated frames generated from a prompt. An artwork's userId
-- is the Clerk subject of its owner. Public artworks are listed for
-- everyone, unlisted ones are seen by whoever has their id, private ones
-- only by their owner (and through a share link the owner made).
local lib = require("lib")

local function metadata_args(created_at_optional)
  local created = v.string()
  if created_at_optional then created = v.optional(v.string()) end
  return v.object{
    width = v.number(),
    height = v.number(),
    fps = v.number(),
    generator = v.string(),
    model = v.string(),
    style = v.optional(v.string()),
    createdAt = created,
  }
end

local function check_metadata(m)
  if m.width <= 0 or m.height <= 0 or m.fps <= 0 then
    lib.fail("INVALID_ARGUMENT", "metadata.width, height and fps must be positive")
  end
end

-- The visibility a new artwork gets when the caller does not say.
local function default_visibility(ctx, identity)
  local user = lib.find_user(ctx, identity)
  if not user then return "private" end
  local settings = ctx.db:query("userSettings")
    :withIndex("by_user", function(q) return q:eq("userId", user._id) end)
    :unique()
  return settings and settings.defaultVisibility or "private"
end

local M = {}

M.create = herald.mutation{
  args = {
    prompt = v.string(),
    frames = v.array(v.string()),
    metadata = metadata_args(true),
    visibility = v.optional(lib.visibility()),
  },
  handler = function(ctx, args)
    local identity = lib.identity(ctx)
    if args.prompt == "" then lib.fail("INVALID_ARGUMENT", "The prompt is empty") end
    check_metadata(args.metadata)
    local now = lib.now(ctx)
    local metadata = args.metadata
    metadata.createdAt = metadata.createdAt or now
    return ctx.db:insert("artworks", {
      userId = identity.subject,
      prompt = args.prompt,
      frames = args.frames,
      metadata = metadata,
      visibility = args.visibility or default_visibility(ctx, identity),
      featured = false,
      likes = 0,
      views = 0,
      createdAt = now,
      updatedAt = now,
    })
  end,
}

M.update = herald.mutation{
  args = {
    id = v.id("artworks"),
    prompt = v.optional(v.string()),
    frames = v.optional(v.array(v.string())),
    metadata = v.optional(metadata_args(true)),
    visibility = v.optional(lib.visibility()),
  },
  handler = function(ctx, args)
    local identity = lib.identity(ctx)
    local artwork = lib.owned_artwork(ctx, args.id, identity)
    if args.prompt == "" then lib.fail("INVALID_ARGUMENT", "The prompt is empty") end
    local fields = {updatedAt = lib.now(ctx)}
    lib.set_if(fields, "prompt", args.prompt)
    lib.set_if(fields, "frames", args.frames)
    lib.set_if(fields, "visibility", args.visibility)
    if args.metadata then
      check_metadata(args.metadata)
      args.metadata.createdAt = args.metadata.createdAt or artwork.metadata.createdAt
      fields.metadata = args.metadata
    end
    ctx.db:patch(artwork._id, fields)
    return ctx.db:get(artwork._id)
  end,
}

-- Deletes an artwork with its share links and embedding; files keep
-- existing but no longer point at it. Collections skip ids that are gone.
M.remove = herald.mutation{
  args = {id = v.id("artworks")},
  handler = function(ctx, args)
    local identity = lib.identity(ctx)
    local artwork = lib.owned_artwork(ctx, args.id, identity)
    local by_artwork = function(q) return q:eq("artworkId", artwork._id) end
    for _, share in ipairs(ctx.db:query("shares"):withIndex("by_artwork", by_artwork):collect()) do
      ctx.db:delete(share._id)
    end
    for _, e in ipairs(ctx.db:query("artworkEmbeddings"):withIndex("by_artwork", by_artwork):collect()) do
      ctx.db:delete(e._id)
    end
    for _, f in ipairs(ctx.db:query("files"):withIndex("by_artwork", by_artwork):collect()) do
      ctx.db:patch(f._id, {artworkId = herald.unset})
    end
    local owner = lib.find_user(ctx, identity)
    if owner then
      local mine = ctx.db:query("collections")
        :withIndex("by_user", function(q) return q:eq("userId", owner._id) end):collect()
      for _, c in ipairs(mine) do
        local kept, changed = herald.array{}, false
        for _, id in ipairs(c.artworkIds) do
          if id == artwork._id then changed = true else kept[#kept + 1] = id end
        end
        if changed then ctx.db:patch(c._id, {artworkIds = kept, updatedAt = lib.now(ctx)}) end
      end
    end
    ctx.db:delete(artwork._id)
    return nil
  end,
}

-- One artwork: public or unlisted for anyone, private for its owner.
-- null when there is no such artwork.
M.get = herald.query{
  args = {id = v.id("artworks")},
  handler = function(ctx, args)
    local artwork = ctx.db:get(args.id)
    if not artwork then return nil end
    if not lib.may_see(artwork, ctx.auth:getUserIdentity()) then
      lib.fail("FORBIDDEN", "This artwork is private")
    end
    return artwork
  end,
}

-- The signed-in user's artworks, newest first.
M.listMine = herald.query{
  args = {limit = v.optional(v.number())},
  handler = function(ctx, args)
    local identity = lib.identity(ctx)
    return ctx.db:query("artworks")
      :withIndex("by_user", function(q) return q:eq("userId", identity.subject) end)
      :order("desc")
      :take(lib.limit(args.limit, 100, 500))
  end,
}

-- Someone's public artworks (a profile page), newest first.
M.listByUser = herald.query{
  args = {userId = v.string(), limit = v.optional(v.number())},
  handler = function(ctx, args)
    return ctx.db:query("artworks")
      :withIndex("by_user", function(q) return q:eq("userId", args.userId) end)
      :filter(function(q) return q:eq(q:field("visibility"), "public") end)
      :order("desc")
      :take(lib.limit(args.limit, 50, 200))
  end,
}

-- The public gallery, newest first, a page at a time (usePaginatedQuery).
M.listPublic = herald.query{
  args = {paginationOpts = v.optional(lib.pagination_opts())},
  handler = function(ctx, args)
    local q = ctx.db:query("artworks")
      :withIndex("by_visibility", function(q) return q:eq("visibility", "public") end)
      :order("desc")
    return lib.page_of(q, args.paginationOpts)
  end,
}

-- Every artwork by its ISO creation date, newest first: the owner's
-- timeline across visibilities is listMine; this one is for the console.
M.listRecent = herald.internalQuery{
  args = {limit = v.optional(v.number())},
  handler = function(ctx, args)
    return ctx.db:query("artworks"):withIndex("by_created"):order("desc")
      :take(lib.limit(args.limit, 50, 500))
  end,
}

-- Featured public artworks, newest first.
M.listFeatured = herald.query{
  args = {limit = v.optional(v.number())},
  handler = function(ctx, args)
    return ctx.db:query("artworks")
      :withIndex("by_featured", function(q) return q:eq("featured", true) end)
      :filter(function(q) return q:eq(q:field("visibility"), "public") end)
      :order("desc")
      :take(lib.limit(args.limit, 20, 100))
  end,
}

-- Curators feature artworks from the console or a trusted worker.
M.setFeatured = herald.internalMutation{
  args = {id = v.id("artworks"), featured = v.boolean()},
  handler = function(ctx, args)
    local artwork = ctx.db:get(args.id)
    if not artwork then lib.fail("NOT_FOUND", "No such artwork") end
    ctx.db:patch(artwork._id, {featured = args.featured, updatedAt = lib.now(ctx)})
    return nil
  end,
}

-- Full-text search over prompts (the search_prompt index): public
-- artworks, or the caller's own with mine = true.
M.search = herald.query{
  args = {query = v.string(), mine = v.optional(v.boolean()), limit = v.optional(v.number())},
  handler = function(ctx, args)
    local identity = ctx.auth:getUserIdentity()
    if args.mine and not identity then lib.fail("UNAUTHENTICATED", "Sign in first") end
    return ctx.db:query("artworks")
      :withSearchIndex("search_prompt", function(q)
        local s = q:search("prompt", args.query)
        if args.mine then return s:eq("userId", identity.subject) end
        return s:eq("visibility", "public")
      end)
      :take(lib.limit(args.limit, 20, 100))
  end,
}

M.like = herald.mutation{
  args = {id = v.id("artworks")},
  handler = function(ctx, args)
    local identity = lib.identity(ctx)
    local artwork = lib.visible_artwork(ctx, args.id, identity)
    local likes = (artwork.likes or 0) + 1
    ctx.db:patch(artwork._id, {likes = likes})
    return likes
  end,
}

-- Counts a view; anyone who may see the artwork, signed in or not.
M.view = herald.mutation{
  args = {id = v.id("artworks")},
  handler = function(ctx, args)
    local artwork = lib.visible_artwork(ctx, args.id, ctx.auth:getUserIdentity())
    local views = (artwork.views or 0) + 1
    ctx.db:patch(artwork._id, {views = views})
    return views
  end,
}

-- Semantic retrieval (seed 001): the artworks whose embeddings are nearest
-- to this artwork's, by cosine similarity over artworkEmbeddings'
-- by_embedding vector index, among embeddings of the same model. Only
-- public artworks and the caller's own come back, best first, as
-- {artwork, score}; the search asks for more than `limit` so that the
-- ones the caller may not see still leave enough. Live: a new or changed
-- embedding re-runs a subscription to it.
M.similar = herald.query{
  args = {id = v.id("artworks"), limit = v.optional(v.number())},
  handler = function(ctx, args)
    local identity = ctx.auth:getUserIdentity()
    local artwork = lib.visible_artwork(ctx, args.id, identity)
    local limit = lib.limit(args.limit, 10, 50)
    local own = ctx.db:query("artworkEmbeddings")
      :withIndex("by_artwork", function(q) return q:eq("artworkId", artwork._id) end)
      :unique()
    if not own then return herald.array({}) end
    local hits = ctx.vectorSearch("artworkEmbeddings", "by_embedding", {
      vector = own.embedding,
      limit = math.min(256, limit * 4 + 1),
      filter = function(q) return q.eq("model", own.model) end,
    })
    local out = herald.array({})
    for _, hit in ipairs(hits) do
      local e = ctx.db:get(hit._id)
      local other = e and e.artworkId ~= artwork._id and ctx.db:get(e.artworkId)
      if other and (other.visibility == "public" or
                    (identity and other.userId == identity.subject)) then
        out[#out + 1] = {artwork = other, score = hit._score}
        if #out == limit then break end
      end
    end
    return out
  end,
}

-- The embedding worker stores an artwork's 1536-dimension vector.
M.setEmbedding = herald.internalMutation{
  args = {artworkId = v.id("artworks"), embedding = v.array(v.float64()), model = v.string()},
  handler = function(ctx, args)
    if #args.embedding ~= 1536 then
      lib.fail("INVALID_ARGUMENT", "An embedding has 1536 dimensions, not " .. #args.embedding)
    end
    if not ctx.db:get(args.artworkId) then lib.fail("NOT_FOUND", "No such artwork") end
    local existing = ctx.db:query("artworkEmbeddings")
      :withIndex("by_artwork", function(q) return q:eq("artworkId", args.artworkId) end)
      :unique()
    return lib.put(ctx, "artworkEmbeddings", existing, {
      artworkId = args.artworkId, embedding = args.embedding, model = args.model, createdAt = lib.now(ctx),
    })
  end,
}

return M
