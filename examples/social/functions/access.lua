-- Who is calling, and what they may see: the helpers every module of the
-- social app (seed 004) shares through require("access"). Nothing here is
-- callable from outside: the module returns plain Lua functions only.
--
-- Sign-in is Better Auth's: its JWT plugin issues the tokens, and the
-- user id of Better Auth is the token's subject (`sub`), so every
-- authorId / senderId / userId / memberIds entry in the schema is an
-- identity's `subject`. auth.config.json names the app's Better Auth
-- instance as the provider (README.md: the JWKS file). Better Auth's JWT
-- plugin signs with EdDSA (Ed25519) by default, which Herald verifies, so
-- auth.config.json expects EdDSA and the plugin needs no configuration.
local A = {}

-- The signed-in user's id, or a refusal for anonymous callers.
function A.userId(ctx)
  local identity = ctx.auth:getUserIdentity()
  if not identity then
    herald.error{code = "UNAUTHENTICATED", message = "Sign in first"}
  end
  return identity.subject
end

-- The signed-in user's id or nil (queries that show a signed-out page).
function A.maybeUserId(ctx)
  local identity = ctx.auth:getUserIdentity()
  return identity and identity.subject or nil
end

function A.isMember(conversation, userId)
  for _, id in ipairs(conversation.memberIds) do
    if id == userId then return true end
  end
  return false
end

-- The conversation if the caller is one of its members; an error
-- otherwise. A conversation that does not exist and one the caller is
-- not in are refused alike, so a non-member learns nothing from the id.
function A.memberConversation(ctx, conversationId)
  local me = A.userId(ctx)
  local conversation = ctx.db:get(conversationId)
  if not conversation or not A.isMember(conversation, me) then
    herald.error{code = "FORBIDDEN", message = "Not a member of this conversation"}
  end
  return conversation, me
end

-- Convex's paginationOptsValidator.
A.paginationOpts = v.paginationOpts()

-- A page of `query` for opts: at least 1, at most `max` items unless the
-- page's end is fixed (endCursor, as usePaginatedQuery sends when it
-- splits a page, or the subscription's journal): then all of it.
function A.page(query, opts, max)
  local n = math.floor(opts.numItems)
  if n < 1 then n = 1 elseif n > max then n = max end
  return query:paginate{numItems = n, cursor = opts.cursor, endCursor = opts.endCursor,
                        maximumRowsRead = opts.maximumRowsRead, maximumBytesRead = opts.maximumBytesRead}
end

function A.nonEmpty(text, what, max)
  if text:match("^%s*$") then
    herald.error{code = "INVALID", message = what .. " must not be empty"}
  end
  if #text > max then
    herald.error{code = "INVALID", message = what .. " is longer than " .. max .. " bytes"}
  end
end

return A
