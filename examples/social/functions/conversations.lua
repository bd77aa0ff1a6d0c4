-- Conversations of the social app (seed 004): a set of members (Better
-- Auth user ids), kept in memberIds sorted and without duplicates. An
-- index on an array field holds the whole array as one key (as in
-- Convex), so by_memberIds answers "the conversation of exactly these
-- members", which is what create needs to reuse an existing one.
local access = require("access")

local MAX_MEMBERS = 50

local M = {}

-- A conversation between the caller and `memberIds` (the caller may be
-- listed or not; duplicates are ignored). The same set of members always
-- gets the same conversation: an existing one is returned, not copied.
M.create = herald.mutation{
  args = {memberIds = v.array(v.string())},
  handler = function(ctx, args)
    local me = access.userId(ctx)
    local set, members = {[me] = true}, {me}
    for _, id in ipairs(args.memberIds) do
      if id == "" then herald.error{code = "INVALID", message = "empty member id"} end
      if not set[id] then
        set[id] = true
        members[#members + 1] = id
      end
    end
    if #members < 2 then
      herald.error{code = "INVALID", message = "a conversation needs someone besides you"}
    end
    if #members > MAX_MEMBERS then
      herald.error{code = "INVALID", message = "at most " .. MAX_MEMBERS .. " members"}
    end
    table.sort(members) -- bytewise, like the index: one key per set of members
    local existing = ctx.db:query("conversations")
      :withIndex("by_memberIds", function(q) return q:eq("memberIds", members) end)
      :first()
    if existing then return existing._id end
    return ctx.db:insert("conversations", {memberIds = members, createdAt = ctx.now})
  end,
}

-- The caller's conversations, most recent activity first (those without
-- a message yet come last).
--
-- Design choice: by_memberIds keys a conversation by its whole member
-- list, so no index range can find "every conversation that contains
-- user X". The seed's schema is kept as it is, so this walks
-- by_lastMessageAt (newest first) and keeps the conversations the caller
-- is in. That reads the whole table, and a subscription to it re-runs on
-- every conversation's new message; fine for a small app, bounded by the
-- query limits (32,768 documents read). An app that grows would add a
-- per-user table (conversationMembers: {userId, conversationId,
-- lastMessageAt} with an index on [userId, lastMessageAt]), written by
-- create and messages.send in the same transaction, and read here with a
-- range: only the caller's rows, and only their changes re-run it.
M.listMine = herald.query{
  args = {limit = v.optional(v.number())},
  handler = function(ctx, args)
    local me = access.userId(ctx)
    local limit = math.max(1, math.min(math.floor(args.limit or 50), 200))
    local mine = herald.array{}
    for _, conversation in ipairs(ctx.db:query("conversations")
        :withIndex("by_lastMessageAt"):order("desc"):collect()) do
      if access.isMember(conversation, me) then
        mine[#mine + 1] = conversation
        if #mine == limit then break end
      end
    end
    return mine
  end,
}

-- One conversation, for its members only.
M.get = herald.query{
  args = {conversationId = v.id("conversations")},
  handler = function(ctx, args)
    return (access.memberConversation(ctx, args.conversationId))
  end,
}

return M
