-- Posts of the social app (seed 004). The author is always the signed-in
-- user (the JWT subject); clients never say who they are.
local access = require("access")
local files = require("files")

-- A post as the app shows it: the document and its media's URLs, in the
-- order of mediaIds. Posts are public, and so are their images.
local function shown(ctx, post)
  if post.mediaIds then post.mediaUrls = files.urls(ctx, post.mediaIds) end
  return post
end

local function showAll(ctx, posts)
  for _, post in ipairs(posts) do shown(ctx, post) end
  return posts
end

local M = {}

-- mediaIds are images or videos the caller uploaded
-- (media:generateUploadUrl), each used once.

M.create = herald.mutation{
  args = {text = v.string(), mediaIds = v.optional(v.array(v.id("_storage")))},
  handler = function(ctx, args)
    local me = access.userId(ctx)
    access.nonEmpty(args.text, "text", 5000)
    if args.mediaIds and #args.mediaIds > 10 then
      herald.error{code = "INVALID", message = "at most 10 media files per post"}
    end
    for i, id in ipairs(args.mediaIds or {}) do
      files.attach(ctx, id, me, {"image/", "video/"}, "mediaIds[" .. (i - 1) .. "]")
    end
    return ctx.db:insert("posts", {
      authorId = me,
      text = args.text,
      mediaIds = args.mediaIds,
      createdAt = ctx.now,
      updatedAt = ctx.now,
    })
  end,
}

-- One author's posts, newest first (by_authorId; _creationTime, the
-- index's last column, orders an author's posts by age).
M.listByAuthor = herald.query{
  args = {authorId = v.string(), paginationOpts = v.optional(access.paginationOpts)},
  handler = function(ctx, args)
    local q = ctx.db:query("posts")
      :withIndex("by_authorId", function(q) return q:eq("authorId", args.authorId) end)
      :order("desc")
    if args.paginationOpts then
      local page = access.page(q, args.paginationOpts, 100)
      showAll(ctx, page.page)
      return page
    end
    return showAll(ctx, q:take(50))
  end,
}

-- Everyone's posts, newest first, a page at a time (by_createdAt desc).
M.feed = herald.query{
  args = {paginationOpts = access.paginationOpts},
  handler = function(ctx, args)
    local page = access.page(ctx.db:query("posts"):withIndex("by_createdAt"):order("desc"),
      args.paginationOpts, 100)
    showAll(ctx, page.page)
    return page
  end,
}

-- Only the author may delete a post; its media go with it.
M.remove = herald.mutation{
  args = {postId = v.id("posts")},
  handler = function(ctx, args)
    local me = access.userId(ctx)
    local post = ctx.db:get(args.postId)
    if not post then herald.error{code = "NOT_FOUND", message = "No such post"} end
    if post.authorId ~= me then
      herald.error{code = "FORBIDDEN", message = "Only the author can delete a post"}
    end
    for _, id in ipairs(post.mediaIds or {}) do files.release(ctx, id) end
    ctx.db:delete(post._id)
    return nil
  end,
}

return M
