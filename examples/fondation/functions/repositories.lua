-- The signed-in user's GitHub repositories, cached (seed 003). The client
-- reads them from the GitHub API on the dashboard and syncs them here.

local C = require("common")

local M = {}

-- The seed's "check for existing repository" query.
local function existing_repository(ctx, userId, githubRepoId)
  return ctx.db:query("repositories")
    :withIndex("by_user", function(q) return q:eq("userId", userId) end)
    :filter(function(q) return q:eq(q:field("githubRepoId"), githubRepoId) end)
    :first()
end

local repository = v.object{
  githubRepoId = v.string(),
  name = v.string(),
  fullName = v.string(),
  description = v.optional(v.string()),
  defaultBranch = v.string(),
}

-- Inserts the repositories not cached yet, refreshes the others; with
-- prune = true, also drops cached repositories that are not in the list
-- (unless a job is still working on them). Returns the ids, in order.
M.sync = herald.mutation{
  args = {repositories = v.array(repository), prune = v.optional(v.boolean())},
  handler = function(ctx, args)
    local user = C.current_user(ctx)
    local ids = herald.array{}
    local listed = {}
    for _, r in ipairs(args.repositories) do
      listed[r.githubRepoId] = true
      local existing = existing_repository(ctx, user._id, r.githubRepoId)
      if existing then
        ctx.db:patch(existing._id, {
          name = r.name,
          fullName = r.fullName,
          description = r.description == nil and herald.unset or r.description,
          defaultBranch = r.defaultBranch,
        })
        ids[#ids + 1] = existing._id
      else
        ids[#ids + 1] = ctx.db:insert("repositories", {
          userId = user._id,
          githubRepoId = r.githubRepoId,
          name = r.name,
          fullName = r.fullName,
          description = r.description,
          defaultBranch = r.defaultBranch,
        })
      end
    end
    if args.prune then
      local cached = ctx.db:query("repositories")
        :withIndex("by_user", function(q) return q:eq("userId", user._id) end)
        :collect()
      for _, repo in ipairs(cached) do
        if not listed[repo.githubRepoId] and not M.hasActiveJob(ctx, user._id, repo._id) then
          ctx.db:delete(repo._id)
        end
      end
    end
    return ids
  end,
}

-- The signed-in user's repositories.
M.list = herald.query{
  args = {},
  handler = function(ctx)
    local user = C.find_user(ctx)
    if not user then return herald.array{} end
    return ctx.db:query("repositories")
      :withIndex("by_user", function(q) return q:eq("userId", user._id) end)
      :collect()
  end,
}

-- One of the signed-in user's repositories by its GitHub id, or null.
M.findByGithubRepoId = herald.query{
  args = {githubRepoId = v.string()},
  handler = function(ctx, args)
    local user = C.find_user(ctx)
    if not user then return nil end
    return existing_repository(ctx, user._id, args.githubRepoId)
  end,
}

-- Whether one of the user's jobs on this repository is still pending or
-- running (a helper, not callable from outside).
function M.hasActiveJob(ctx, userId, repositoryId)
  return ctx.db:query("jobs")
    :withIndex("by_user", function(q) return q:eq("userId", userId) end)
    :filter(function(q)
      return q:and_(q:eq(q:field("repositoryId"), repositoryId),
                    q:or_(q:eq(q:field("status"), "pending"), q:eq(q:field("status"), "running")))
    end)
    :first() ~= nil
end

-- Removes one of the signed-in user's repositories from the cache.
M.remove = herald.mutation{
  args = {repositoryId = v.id("repositories")},
  handler = function(ctx, args)
    local repo, user = C.owned_repository(ctx, args.repositoryId)
    if M.hasActiveJob(ctx, user._id, repo._id) then
      herald.error{code = "REPOSITORY_BUSY", message = "A documentation job is still running on " .. repo.fullName}
    end
    ctx.db:delete(repo._id)
  end,
}

return M
