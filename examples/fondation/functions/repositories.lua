-- The signed-in user's GitHub repositories, cached (seed 003): "populated
-- via GitHub API when user visits dashboard ... can be manually refreshed
-- by user". repositories:sync is an action that reads them from the
-- GitHub REST API itself, every page, and caches them with
-- repositories:save in one transaction; a client that read them from
-- GitHub on its own may call repositories:save directly.

local C = require("common")

local M = {}

-- GitHub sends at most 100 repositories a page; at most this many pages
-- are read (1,000 repositories). A list cut short is cached but prunes
-- nothing, since the repositories past the cut are not gone.
local PER_PAGE = 100
local MAX_PAGES = 10

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
-- The user's cache is read once (by_user) and looked up by githubRepoId,
-- so that a sync of n repositories reads n rows, not n times n.
M.save = herald.mutation{
  args = {repositories = v.array(repository), prune = v.optional(v.boolean())},
  handler = function(ctx, args)
    local user = C.current_user(ctx)
    local cached = ctx.db:query("repositories")
      :withIndex("by_user", function(q) return q:eq("userId", user._id) end)
      :collect()
    local by_github_id = {}
    for _, repo in ipairs(cached) do by_github_id[repo.githubRepoId] = repo end
    local ids = herald.array{}
    local listed = {}
    for _, r in ipairs(args.repositories) do
      listed[r.githubRepoId] = true
      local existing = by_github_id[r.githubRepoId]
      if existing then
        ctx.db:patch(existing._id, {
          name = r.name,
          fullName = r.fullName,
          description = r.description == nil and herald.unset or r.description,
          defaultBranch = r.defaultBranch,
        })
        ids[#ids + 1] = existing._id
      else
        local id = ctx.db:insert("repositories", {
          userId = user._id,
          githubRepoId = r.githubRepoId,
          name = r.name,
          fullName = r.fullName,
          description = r.description,
          defaultBranch = r.defaultBranch,
        })
        by_github_id[r.githubRepoId] = {_id = id}
        ids[#ids + 1] = id
      end
    end
    if args.prune then
      for _, repo in ipairs(cached) do
        if not listed[repo.githubRepoId] and not M.hasActiveJob(ctx, user._id, repo._id) then
          ctx.db:delete(repo._id)
        end
      end
    end
    return ids
  end,
}

-- The URL of the page after this one, from GitHub's Link header
-- (`<https://api.github.com/user/repos?page=2>; rel="next", <...>; rel="last"`),
-- or nil on the last page.
local function next_page(link)
  for target, params in (link or ""):gmatch("<([^>]*)>([^,]*)") do
    if params:match('rel="?next"?') then return target end
  end
  return nil
end

-- A GitHub answer that is not the page asked for, as the app's error.
local function github_failure(r)
  local parsed, body = pcall(r.json)
  local said = parsed and type(body) == "table" and type(body.message) == "string" and (": " .. body.message) or ""
  if r.status == 401 then
    herald.error{code = "GITHUB_UNAUTHORIZED", message = "GitHub refused the token" .. said}
  elseif (r.status == 403 or r.status == 429) and r.headers["x-ratelimit-remaining"] == "0" then
    herald.error{code = "GITHUB_RATE_LIMITED", message = "GitHub's rate limit is spent" .. said,
                 resetAt = tonumber(r.headers["x-ratelimit-reset"])}
  elseif r.status == 404 then
    herald.error{code = "GITHUB_NOT_FOUND", message = "GitHub has no such user" .. said}
  end
  herald.error{code = "GITHUB_ERROR", message = "GitHub answered " .. r.status .. said}
end

-- A repository of GitHub's REST API as the repositories table keeps it.
local function from_github(repo)
  local function text(x) if type(x) == "string" then return x end end
  if math.type(repo.id) == nil or type(repo.name) ~= "string" or type(repo.full_name) ~= "string" then
    herald.error{code = "GITHUB_ERROR", message = "GitHub sent a repository without id, name or full_name"}
  end
  return {
    githubRepoId = string.format("%d", repo.id),
    name = repo.name,
    fullName = repo.full_name,
    description = text(repo.description), -- GitHub sends null for none
    defaultBranch = text(repo.default_branch) or "main",
  }
end

-- Reads the signed-in user's repositories from the GitHub API, every
-- page, and caches them (repositories:save, one transaction). With the
-- user's GitHub OAuth token (`githubToken`, used for this call only and
-- never stored): GET /user/repos, the repositories the token may see,
-- private ones too. Without: GET /users/{username}/repos, the public ones.
-- With a token, repositories no longer on GitHub are dropped (unless a
-- job is still working on them) when every page was read and `prune` is
-- not false; without one nothing is dropped, since the public listing
-- does not show private repositories.
-- The API is the operator's `githubApiUrl` setting (settings.lua).
M.sync = herald.action{
  args = {githubToken = v.optional(v.string()), prune = v.optional(v.boolean())},
  handler = function(ctx, args)
    C.identity(ctx)
    local user = ctx:runQuery("users:me", {})
    if not user then
      herald.error{code = "NOT_REGISTERED", message = "No Fondation account for this login yet"}
    end
    local api = ctx:runQuery("settings:get", {key = "githubApiUrl"})
    local url
    if args.githubToken then
      url = api .. "/user/repos?per_page=" .. PER_PAGE .. "&page=1"
    elseif user.username:match("^[%w%-]+$") then
      url = api .. "/users/" .. user.username .. "/repos?per_page=" .. PER_PAGE .. "&page=1"
    else
      herald.error{code = "INVALID_USERNAME", message = "Not a GitHub username: " .. user.username}
    end
    local headers = {
      Accept = "application/vnd.github+json",
      ["X-GitHub-Api-Version"] = "2022-11-28",
      ["User-Agent"] = "Fondation", -- GitHub refuses requests without one
      Authorization = args.githubToken and ("Bearer " .. args.githubToken) or nil,
    }
    local repositories = herald.array{}
    local pages = 0
    while url and pages < MAX_PAGES do
      -- The token goes to the configured API only, whatever a Link says.
      if url:sub(1, #api + 1) ~= api .. "/" then
        herald.error{code = "GITHUB_ERROR", message = "GitHub's next page is on another server"}
      end
      local fetched, r = pcall(fetch, url, {headers = headers})
      if not fetched then
        herald.error{code = "GITHUB_UNREACHABLE", message = "GitHub could not be reached: " .. tostring(r)}
      end
      if r.status ~= 200 then github_failure(r) end
      local page = r:json()
      if type(page) ~= "table" or (#page == 0 and next(page) ~= nil) then
        herald.error{code = "GITHUB_ERROR", message = "GitHub's answer is not a list of repositories"}
      end
      for _, repo in ipairs(page) do repositories[#repositories + 1] = from_github(repo) end
      pages = pages + 1
      url = next_page(r.headers["link"])
    end
    return ctx:runMutation("repositories:save", {
      repositories = repositories,
      prune = url == nil and args.githubToken ~= nil and args.prune ~= false,
    })
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
