-- Fondation's users (seed 003): one row per GitHub account, created or
-- updated on every login. The GitHub user id is never taken from the
-- arguments: it is the subject of the JWT that Fondation's auth server
-- minted after the GitHub OAuth login.

local C = require("common")

local M = {}

-- The first of the identity's claims that is a non-empty string.
local function claim(identity, ...)
  for _, name in ipairs({...}) do
    local value = identity[name]
    if type(value) == "string" and value ~= "" then return value end
  end
  return nil
end

-- Create or update the signed-in user. The profile fields come from the
-- arguments when given (the client read them from the GitHub API), else
-- from the token's claims.
M.upsertFromGitHub = herald.mutation{
  args = {
    username = v.optional(v.string()),
    email = v.optional(v.string()),
    avatarUrl = v.optional(v.string()),
  },
  handler = function(ctx, args)
    local identity = C.identity(ctx)
    local githubId = identity.subject
    -- The seed checks GitHub ids with /^\d+$/.
    if type(githubId) ~= "string" or not githubId:match("^%d+$") then
      herald.error{code = "INVALID_GITHUB_ID", message = "Invalid GitHub ID: the token's subject must be a GitHub user id"}
    end
    local username = args.username
      or claim(identity, "preferredUsername", "preferred_username", "nickname", "login", "name")
    local email = args.email or claim(identity, "email")
    local avatarUrl = args.avatarUrl or claim(identity, "pictureUrl", "picture", "avatar_url")
    if username == nil or username == "" then
      herald.error{code = "USERNAME_REQUIRED", message = "No GitHub username in the arguments or the token"}
    end

    local user = ctx.db:query("users")
      :withIndex("by_github_id", function(q) return q:eq("githubId", githubId) end)
      :first()
    if user then
      ctx.db:patch(user._id, {username = username, email = email, avatarUrl = avatarUrl})
      return user._id
    end
    return ctx.db:insert("users", {
      githubId = githubId,
      username = username,
      email = email,
      avatarUrl = avatarUrl,
      createdAt = ctx.now,
    })
  end,
}

-- The signed-in user's row; null when anonymous or not registered yet.
M.me = herald.query{
  args = {},
  handler = function(ctx)
    if not ctx.auth:getUserIdentity() then return nil end
    return C.find_user(ctx)
  end,
}

return M
