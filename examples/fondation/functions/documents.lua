-- Generated documentation (seed 003, v0.3): the worker saves the result of
-- a running job, then completes it; one document per job (saving again
-- replaces it).

local C = require("common")

local M = {}

local function document_of_job(ctx, job)
  return ctx.db:query("documents")
    :withIndex("by_repository", function(q) return q:eq("repositoryId", job.repositoryId) end)
    :filter(function(q) return q:eq(q:field("jobId"), job._id) end)
    :first()
end

M.save = herald.mutation{
  args = {
    jobId = v.id("jobs"),
    callbackToken = v.string(),
    content = v.string(),
    format = v.union(v.literal("markdown"), v.literal("html"), v.literal("pdf")),
    metadata = v.optional(v.any()),
  },
  handler = function(ctx, args)
    local job = C.worker_job(ctx, args.jobId, args.callbackToken)
    if job.status ~= "running" then
      herald.error{code = "JOB_NOT_RUNNING", message = "Documents are saved by a running job; this one is " .. job.status}
    end
    local doc = {
      jobId = job._id,
      repositoryId = job.repositoryId,
      content = args.content,
      format = args.format,
      metadata = args.metadata,
      createdAt = ctx.now,
    }
    local existing = document_of_job(ctx, job)
    if existing then
      ctx.db:replace(existing._id, doc)
      return existing._id
    end
    return ctx.db:insert("documents", doc)
  end,
}

-- The documents generated for one of the signed-in user's repositories,
-- newest first.
M.listForRepository = herald.query{
  args = {repositoryId = v.id("repositories")},
  handler = function(ctx, args)
    local repo = C.owned_repository(ctx, args.repositoryId)
    return ctx.db:query("documents")
      :withIndex("by_repository", function(q) return q:eq("repositoryId", repo._id) end)
      :order("desc")
      :collect()
  end,
}

-- The document of one of the signed-in user's jobs, or null.
M.getForJob = herald.query{
  args = {jobId = v.id("jobs")},
  handler = function(ctx, args)
    return document_of_job(ctx, (C.owned_job(ctx, args.jobId)))
  end,
}

return M
