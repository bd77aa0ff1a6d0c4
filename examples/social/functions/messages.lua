-- Messages of the social app (seed 004). Only a conversation's members
-- may read or post in it; the sender is always the signed-in user.
local access = require("access")

local M = {}

-- Posts a message and moves the conversation's lastMessageAt, in one
-- transaction: both writes commit or neither does, and a subscriber sees
-- them in the same update.
M.send = herald.mutation{
  args = {
    conversationId = v.id("conversations"),
    text = v.string(),
    mediaId = v.optional(v.id("_storage")),
  },
  handler = function(ctx, args)
    local conversation, me = access.memberConversation(ctx, args.conversationId)
    access.nonEmpty(args.text, "text", 10000)
    -- ctx.now; never before the conversation's last message, so that
    -- createdAt order is send order even if the server's clock steps back.
    local at = math.max(ctx.now, conversation.lastMessageAt or 0)
    local id = ctx.db:insert("messages", {
      conversationId = conversation._id,
      senderId = me,
      text = args.text,
      mediaId = args.mediaId,
      createdAt = at,
    })
    ctx.db:patch(conversation._id, {lastMessageAt = at})
    return id
  end,
}

-- The `limit` most recent messages (default 50), oldest first as a chat
-- shows them: by_conversationId_createdAt, read newest first and turned.
M.list = herald.query{
  args = {conversationId = v.id("conversations"), limit = v.optional(v.number())},
  handler = function(ctx, args)
    local conversation = access.memberConversation(ctx, args.conversationId)
    local limit = math.max(1, math.min(math.floor(args.limit or 50), 500))
    local newest = ctx.db:query("messages")
      :withIndex("by_conversationId_createdAt", function(q)
        return q:eq("conversationId", conversation._id)
      end)
      :order("desc"):take(limit)
    local out = herald.array{}
    for i = #newest, 1, -1 do out[#out + 1] = newest[i] end
    return out
  end,
}

-- Older history a page at a time, newest first (scrolling back).
M.listPage = herald.query{
  args = {conversationId = v.id("conversations"), paginationOpts = access.paginationOpts},
  handler = function(ctx, args)
    local conversation = access.memberConversation(ctx, args.conversationId)
    return access.page(ctx.db:query("messages")
      :withIndex("by_conversationId_createdAt", function(q)
        return q:eq("conversationId", conversation._id)
      end)
      :order("desc"), args.paginationOpts, 100)
  end,
}

return M
