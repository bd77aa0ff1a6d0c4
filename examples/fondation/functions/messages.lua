-- A job's live execution log (seed 003, v0.2): the worker appends log,
-- tool and error messages while the job runs; the job's owner watches them.

local C = require("common")

local M = {}

M.append = herald.mutation{
  args = {
    jobId = v.id("jobs"),
    callbackToken = v.string(),
    content = v.string(),
    type = v.union(v.literal("log"), v.literal("tool"), v.literal("error")),
  },
  handler = function(ctx, args)
    local job = C.worker_job(ctx, args.jobId, args.callbackToken)
    if C.FINISHED[job.status] then
      herald.error{code = "JOB_FINISHED", message = "The job is " .. job.status .. "; its log is closed"}
    end
    return ctx.db:insert("messages", {
      jobId = job._id,
      content = args.content,
      type = args.type,
      timestamp = ctx.now,
    })
  end,
}

-- The log of one of the signed-in user's jobs, oldest first.
M.listForJob = herald.query{
  args = {jobId = v.id("jobs")},
  handler = function(ctx, args)
    local job = C.owned_job(ctx, args.jobId)
    return ctx.db:query("messages")
      :withIndex("by_job", function(q) return q:eq("jobId", job._id) end)
      :collect()
  end,
}

return M
