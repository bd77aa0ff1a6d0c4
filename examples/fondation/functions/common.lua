-- Helpers shared by Fondation's modules (seed 003). Nothing here is
-- callable from outside: the module returns plain Lua functions only.
--
-- Two kinds of callers:
--   * signed-in users: a JWT minted by Fondation's own auth server after a
--     GitHub OAuth login; its subject is the GitHub user id;
--   * the documentation worker: no session at all, it presents the job's
--     callback token, which is compared in constant time.

local C = {}

-- The identity of the signed-in caller, or an UNAUTHENTICATED error.
function C.identity(ctx)
  local identity = ctx.auth:getUserIdentity()
  if not identity then
    herald.error{code = "UNAUTHENTICATED", message = "Sign in with GitHub first"}
  end
  return identity
end

-- The users row of the signed-in caller, or nil when they have not been
-- registered by users:upsertFromGitHub yet. Errors when anonymous.
function C.find_user(ctx)
  local identity = C.identity(ctx)
  return ctx.db:query("users")
    :withIndex("by_github_id", function(q) return q:eq("githubId", identity.subject) end)
    :first()
end

-- The users row of the signed-in caller, which must exist.
function C.current_user(ctx)
  local user = C.find_user(ctx)
  if not user then
    herald.error{code = "NOT_REGISTERED", message = "No Fondation account for this login yet"}
  end
  return user
end

-- A job as users may see it: everything but the callback token.
function C.public_job(job)
  if job == nil then return nil end
  local out = {}
  for k, value in pairs(job) do
    if k ~= "callbackToken" then out[k] = value end
  end
  return out
end

-- The caller's own repository; FORBIDDEN for someone else's.
function C.owned_repository(ctx, repositoryId)
  local user = C.current_user(ctx)
  local repo = ctx.db:get(repositoryId)
  if not repo then
    herald.error{code = "NOT_FOUND", message = "Repository not found"}
  end
  if repo.userId ~= user._id then
    herald.error{code = "FORBIDDEN", message = "This repository belongs to another user"}
  end
  return repo, user
end

-- The caller's own job; FORBIDDEN for someone else's.
function C.owned_job(ctx, jobId)
  local user = C.current_user(ctx)
  local job = ctx.db:get(jobId)
  if not job then
    herald.error{code = "NOT_FOUND", message = "Job not found"}
  end
  if job.userId ~= user._id then
    herald.error{code = "FORBIDDEN", message = "This job belongs to another user"}
  end
  return job, user
end

-- The job a worker acts on, after checking the callback token it
-- presented against the stored one in constant time. A missing job and a
-- wrong token get the same answer, so the answer tells a prober nothing.
function C.worker_job(ctx, jobId, callbackToken)
  local job = ctx.db:get(jobId)
  if not job or not herald.tokenEqual(callbackToken, job.callbackToken) then
    herald.error{code = "INVALID_TOKEN", message = "Invalid callback token for this job"}
  end
  return job
end

C.FINISHED = {completed = true, failed = true}

return C
