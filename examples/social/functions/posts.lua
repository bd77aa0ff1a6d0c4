-- Posts of the social app (seed 004). The author is always the signed-in
-- user (the JWT subject); clients never say who they are.
local access = require("access")

local M = {}

M.create = herald.mutation{
  args = {text = v.string(), mediaIds = v.optional(v.array(v.id("_storage")))},
  handler = function(ctx, args)
    local me = access.userId(ctx)
    access.nonEmpty(args.text, "text", 5000)
    if args.mediaIds and #args.mediaIds > 10 then
      herald.error{code = "INVALID", message = "at most 10 media files per post"}
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
    if args.paginationOpts then return access.page(q, args.paginationOpts, 100) end
    return q:take(50)
  end,
}

-- Everyone's posts, newest first, a page at a time (by_createdAt desc).
M.feed = herald.query{
  args = {paginationOpts = access.paginationOpts},
  handler = function(ctx, args)
    return access.page(ctx.db:query("posts"):withIndex("by_createdAt"):order("desc"),
      args.paginationOpts, 100)
  end,
}

-- Only the author may delete a post.
M.remove = herald.mutation{
  args = {postId = v.id("posts")},
  handler = function(ctx, args)
    local me = access.userId(ctx)
    local post = ctx.db:get(args.postId)
    if not post then herald.error{code = "NOT_FOUND", message = "No such post"} end
    if post.authorId ~= me then
      herald.error{code = "FORBIDDEN", message = "Only the author can delete a post"}
    end
    ctx.db:delete(post._id)
    return nil
  end,
}

return M
