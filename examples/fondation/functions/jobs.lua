-- Documentation-generation jobs (seed 003). A user clicks "Generate Docs":
-- jobs:create makes a pending job with a fresh callback token and gives the
-- token to its creator only, who hands it to the documentation worker. The
-- worker has no user session: it reports progress through jobs:updateStatus
-- (and messages:append, documents:save), presenting the token each time.
--
-- No query returns the callback token, to anyone: results go through
-- C.public_job.

local C = require("common")

local M = {}

local DEFAULT_PROMPT = "Generate comprehensive documentation for this repository"

-- pending → running → completed
--                  ↘→ failed
local NEXT = {
  pending = {running = true},
  running = {completed = true, failed = true},
}

local status = v.union(v.literal("pending"), v.literal("running"),
                       v.literal("completed"), v.literal("failed"))

M.create = herald.mutation{
  args = {repositoryId = v.id("repositories"), prompt = v.optional(v.string())},
  handler = function(ctx, args)
    local repo, user = C.owned_repository(ctx, args.repositoryId)
    local prompt = args.prompt
    if prompt == nil or prompt == "" then prompt = DEFAULT_PROMPT end
    local callbackToken = herald.token()
    local jobId = ctx.db:insert("jobs", {
      userId = user._id,
      repositoryId = repo._id,
      status = "pending",
      prompt = prompt,
      callbackToken = callbackToken,
      createdAt = ctx.now,
    })
    -- Only the creator receives this answer.
    return {jobId = jobId, callbackToken = callbackToken}
  end,
}

-- The signed-in user's jobs, newest first.
M.listMine = herald.query{
  args = {},
  handler = function(ctx)
    local user = C.find_user(ctx)
    local out = herald.array{}
    if not user then return out end
    local jobs = ctx.db:query("jobs")
      :withIndex("by_user", function(q) return q:eq("userId", user._id) end)
      :order("desc")
      :collect()
    for i, job in ipairs(jobs) do out[i] = C.public_job(job) end
    return out
  end,
}

-- One of the signed-in user's jobs.
M.get = herald.query{
  args = {jobId = v.id("jobs")},
  handler = function(ctx, args)
    return C.public_job((C.owned_job(ctx, args.jobId)))
  end,
}

-- The worker's status callback. `message`, when given, is added to the
-- job's log (as an error message when the job failed).
M.updateStatus = herald.mutation{
  args = {
    jobId = v.id("jobs"),
    callbackToken = v.string(),
    status = status,
    message = v.optional(v.string()),
  },
  handler = function(ctx, args)
    local job = C.worker_job(ctx, args.jobId, args.callbackToken)
    if not (NEXT[job.status] and NEXT[job.status][args.status]) then
      herald.error{
        code = "INVALID_TRANSITION",
        message = "A job cannot go from " .. job.status .. " to " .. args.status,
        from = job.status,
        to = args.status,
      }
    end
    ctx.db:patch(job._id, {status = args.status})
    if args.message then
      ctx.db:insert("messages", {
        jobId = job._id,
        content = args.message,
        type = args.status == "failed" and "error" or "log",
        timestamp = ctx.now,
      })
    end
    return {status = args.status}
  end,
}

return M
