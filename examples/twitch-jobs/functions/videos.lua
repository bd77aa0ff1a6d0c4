-- The job-progress functions of the video-processing app (seed 002),
-- called by the Python backend over HTTP while browsers watch the videos
-- table live. The four seed functions are written as the seed describes
-- them, with one addition: the three that write take the worker's admin
-- key (`Authorization: Bearer <admin key>`), so that no browser can fake
-- progress. `list`, `create` and `retry` serve the dashboard.

-- A patch field the caller left out is removed, as `undefined` does in a
-- Convex patch.
local function opt(x)
  if x == nil then return herald.unset end
  return x
end

local function worker_only(ctx)
  if not ctx.auth:isAdmin() then
    herald.error{code = "FORBIDDEN", message = "only the processing backend (admin key) reports job progress"}
  end
end

-- Starting or retrying a job: a signed-in user or the backend.
local function signed_in(ctx)
  if not ctx.auth:isAdmin() and not ctx.auth:getUserIdentity() then
    herald.error{code = "UNAUTHENTICATED", message = "sign in to start a job"}
  end
end

local function video_by_twitch_id(ctx, twitchId)
  local video = ctx.db:query("videos")
    :withIndex("by_twitch_id", function(q) return q:eq("twitchId", twitchId) end)
    :first()
  if not video then error("Video not found: " .. twitchId, 2) end
  return video
end

local M = {}

M.updateJobProgress = herald.mutation{
  args = {
    twitchId = v.string(),
    jobId = v.string(),
    progressPercentage = v.optional(v.number()),
    currentStage = v.optional(v.string()),
    estimatedCompletionSeconds = v.optional(v.number()),
    stageProgress = v.optional(v.object({})),
  },
  handler = function(ctx, args)
    worker_only(ctx)
    local video = video_by_twitch_id(ctx, args.twitchId)
    ctx.db:patch(video._id, {
      jobId = args.jobId,
      progressPercentage = opt(args.progressPercentage),
      currentStage = opt(args.currentStage),
      estimatedCompletionSeconds = opt(args.estimatedCompletionSeconds),
      stageProgress = opt(args.stageProgress),
      updatedAt = ctx.now,
    })
  end,
}

M.updateJobError = herald.mutation{
  args = {
    twitchId = v.string(),
    jobId = v.string(),
    errorType = v.string(),
    errorMessage = v.string(),
    errorDetails = v.optional(v.string()),
    isRetryable = v.boolean(),
  },
  handler = function(ctx, args)
    worker_only(ctx)
    local video = video_by_twitch_id(ctx, args.twitchId)
    ctx.db:patch(video._id, {
      jobId = args.jobId,
      status = "Failed",
      errorType = args.errorType,
      errorMessage = args.errorMessage,
      errorDetails = opt(args.errorDetails),
      isRetryable = args.isRetryable,
      processingCompletedAt = ctx.now,
      updatedAt = ctx.now,
    })
  end,
}

M.completeJob = herald.mutation{
  args = {
    twitchId = v.string(),
    jobId = v.string(),
    urls = v.optional(v.object({})),
  },
  handler = function(ctx, args)
    worker_only(ctx)
    local video = video_by_twitch_id(ctx, args.twitchId)
    local fields = {
      jobId = args.jobId,
      status = "Completed",
      progressPercentage = 100,
      currentStage = "Completed",
      estimatedCompletionSeconds = 0,
      processingCompletedAt = ctx.now,
      updatedAt = ctx.now,
    }
    for k, url in pairs(args.urls or {}) do fields[k] = url end -- ...args.urls
    ctx.db:patch(video._id, fields)
  end,
}

M.getJobById = herald.query{
  args = {jobId = v.string()},
  handler = function(ctx, args)
    return ctx.db:query("videos")
      :withIndex("by_job_id", function(q) return q:eq("jobId", args.jobId) end)
      :first()
  end,
}

-- The dashboard: every video, newest job first.
M.list = herald.query{
  args = {status = v.optional(v.string())},
  handler = function(ctx, args)
    if args.status then
      return ctx.db:query("videos")
        :withIndex("by_status", function(q) return q:eq("status", args.status) end)
        :order("desc"):take(200)
    end
    return ctx.db:query("videos"):withIndex("by_created_at"):order("desc"):take(200)
  end,
}

-- A new video to process; the worker picks up Queued ones.
M.create = herald.mutation{
  args = {twitchId = v.string(), title = v.string(), jobId = v.optional(v.string())},
  handler = function(ctx, args)
    signed_in(ctx)
    local existing = ctx.db:query("videos")
      :withIndex("by_twitch_id", function(q) return q:eq("twitchId", args.twitchId) end)
      :first()
    if existing then herald.error{code = "ALREADY_EXISTS", message = "Video already exists: " .. args.twitchId} end
    return ctx.db:insert("videos", {
      twitchId = args.twitchId,
      title = args.title,
      status = "Queued",
      jobId = args.jobId,
      progressPercentage = 0,
      retryCount = 0,
      createdAt = ctx.now,
      updatedAt = ctx.now,
    })
  end,
}

-- A failed, retryable job goes back to the queue.
M.retry = herald.mutation{
  args = {twitchId = v.string()},
  handler = function(ctx, args)
    signed_in(ctx)
    local video = video_by_twitch_id(ctx, args.twitchId)
    if video.status ~= "Failed" or not video.isRetryable then
      herald.error{code = "NOT_RETRYABLE", message = "This job cannot be retried"}
    end
    ctx.db:patch(video._id, {
      status = "Queued",
      progressPercentage = 0,
      currentStage = herald.unset,
      errorType = herald.unset,
      errorMessage = herald.unset,
      errorDetails = herald.unset,
      isRetryable = herald.unset,
      retryCount = (video.retryCount or 0) + 1,
      updatedAt = ctx.now,
    })
  end,
}

return M
