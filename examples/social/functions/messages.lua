-- Messages of the social app (seed 004). Only a conversation's members
-- may read or post in it; the sender is always the signed-in user. An
-- attachment's URL is handed only to the conversation's members: list and
-- listPage add it (mediaUrl) after checking membership, and no other
-- function returns it.
local access = require("access")
local files = require("files")

local function withMedia(ctx, messages)
  for _, m in ipairs(messages) do
    if m.mediaId then m.mediaUrl = files.url(ctx, m.mediaId) end
  end
  return messages
end

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
    if args.mediaId then files.attach(ctx, args.mediaId, me, nil, "mediaId") end
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
    return withMedia(ctx, out)
  end,
}

-- Older history a page at a time, newest first (scrolling back).
M.listPage = herald.query{
  args = {conversationId = v.id("conversations"), paginationOpts = access.paginationOpts},
  handler = function(ctx, args)
    local conversation = access.memberConversation(ctx, args.conversationId)
    local page = access.page(ctx.db:query("messages")
      :withIndex("by_conversationId_createdAt", function(q)
        return q:eq("conversationId", conversation._id)
      end)
      :order("desc"), args.paginationOpts, 100)
    withMedia(ctx, page.page)
    return page
  end,
}

-- The sender deletes a message of theirs (a member still); its attachment
-- goes with it.
M.remove = herald.mutation{
  args = {messageId = v.id("messages")},
  handler = function(ctx, args)
    local me = access.userId(ctx)
    local message = ctx.db:get(args.messageId)
    if not message then herald.error{code = "NOT_FOUND", message = "No such message"} end
    access.memberConversation(ctx, message.conversationId)
    if message.senderId ~= me then
      herald.error{code = "FORBIDDEN", message = "Only the sender can delete a message"}
    end
    files.release(ctx, message.mediaId)
    ctx.db:delete(message._id)
    return nil
  end,
}

return M
