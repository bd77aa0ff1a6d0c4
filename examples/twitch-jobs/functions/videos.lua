-- The job-progress functions of the video-processing app (seed 002),
-- called by the Python backend over HTTP while browsers watch the videos
-- table live. The four seed functions are written as the seed describes
-- them, with one addition: the three that write take the worker's admin
-- key (`Authorization: Bearer <admin key>`), so that no browser can fake
-- progress. `list`, `create` and `retry` serve the dashboard.
--
-- A job may have a webhook, the seed's `callbackUrl`: when the job
-- completes or fails, the mutation that says so schedules
-- `deliverCallback`, an action that POSTs the job's document there as
-- JSON. The schedule is written by the same transaction as the new status,
-- so a status that is rolled back sends nothing, and one that commits
-- sends once. Herald retries nothing by itself (a scheduled action runs at
-- most once); the delivery retries itself, with the policy below.

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

-- The webhook's retry policy. Attempt 1 is made as soon as the job's new
-- status commits; a network error or an answer other than 2xx schedules
-- the next attempt after 1 s, 5 s, then 30 s: four attempts at most,
-- then it gives up. An address Herald refuses to fetch (a private one,
-- without --allow-fetch) is not retried: a retry would be refused too.
-- Each attempt is a `_scheduled_functions` row of its own, whose state
-- says how it went (`callbackAttempts` lists them).
local CALLBACK_BACKOFF_MS = {1000, 5000, 30000}
local CALLBACK_ATTEMPTS = #CALLBACK_BACKOFF_MS + 1

-- Sends the job's webhook when it has one: schedules attempt 1 with the
-- document as this mutation leaves it.
local function schedule_callback(ctx, video_id)
  local video = ctx.db:get(video_id)
  if video.callbackUrl then
    ctx.scheduler:runAfter(0, "videos:deliverCallback", {url = video.callbackUrl, job = video, attempt = 1})
  end
end

local function check_callback_url(url)
  if url ~= nil and not (url:match("^https?://[^/]") and #url <= 2048) then
    herald.error{code = "INVALID_CALLBACK_URL", message = "callbackUrl must be an http:// or https:// URL"}
  end
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
    schedule_callback(ctx, video._id)
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
    schedule_callback(ctx, video._id)
  end,
}

-- One attempt at a job's webhook: POSTs the job's document (what
-- getJobById returned when the job completed or failed) to its callbackUrl.
-- `Idempotency-Key` is the same for every attempt of one delivery, so a
-- receiver that got an attempt whose answer was lost can tell the retry
-- apart; `X-Callback-Attempt` counts from 1. Internal: only the scheduler
-- runs it, so no client can have Herald POST a body of its own choosing.
M.deliverCallback = herald.internalAction{
  args = {url = v.string(), job = v.any(), attempt = v.number()},
  handler = function(ctx, args)
    local attempt = math.tointeger(args.attempt) or 1
    local sent, res = pcall(fetch, args.url, {
      method = "POST",
      headers = {
        ["Idempotency-Key"] = args.job._id .. ":" .. string.format("%.0f", args.job.updatedAt),
        ["X-Callback-Attempt"] = tostring(attempt),
      },
      body = args.job,
    })
    if sent and res.ok then return {attempt = attempt, status = res.status} end
    local failure = sent and ("the callback URL answered " .. res.status) or tostring(res)
    if not sent and type(res) == "table" and res.code == "Unauthorized" then
      error(failure .. "; not retried", 0)
    end
    if attempt >= CALLBACK_ATTEMPTS then
      error(failure .. "; gave up after " .. attempt .. " attempts", 0)
    end
    local delay = CALLBACK_BACKOFF_MS[attempt]
    ctx.scheduler:runAfter(delay, "videos:deliverCallback", {url = args.url, job = args.job, attempt = attempt + 1})
    -- The attempt's row says failed, with what went wrong and what comes next.
    error(failure .. "; attempt " .. (attempt + 1) .. " in " .. delay // 1000 .. " s", 0)
  end,
}

-- The webhook attempts of one job, oldest first, as the scheduler's rows
-- record them: {attempt, state, error, scheduledTime, completedTime}. For
-- the backend and the console (admin key): a callbackUrl may hold a secret.
M.callbackAttempts = herald.internalQuery{
  args = {jobId = v.string()},
  handler = function(ctx, args)
    local rows = ctx.db.system:query("_scheduled_functions"):order("desc"):take(1000)
    local out = herald.array{}
    for i = #rows, 1, -1 do
      local row = rows[i]
      if row.name == "videos:deliverCallback" and row.args.job.jobId == args.jobId then
        out[#out + 1] = {
          attempt = row.args.attempt,
          state = row.state.kind,
          error = row.state.error,
          scheduledTime = row.scheduledTime,
          completedTime = row.completedTime,
        }
      end
    end
    return out
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

-- A new video to process; the worker picks up Queued ones. `callbackUrl`,
-- when given, is POSTed the job's document when it completes or fails.
M.create = herald.mutation{
  args = {twitchId = v.string(), title = v.string(), jobId = v.optional(v.string()),
          callbackUrl = v.optional(v.string())},
  handler = function(ctx, args)
    signed_in(ctx)
    check_callback_url(args.callbackUrl)
    local existing = ctx.db:query("videos")
      :withIndex("by_twitch_id", function(q) return q:eq("twitchId", args.twitchId) end)
      :first()
    if existing then herald.error{code = "ALREADY_EXISTS", message = "Video already exists: " .. args.twitchId} end
    return ctx.db:insert("videos", {
      twitchId = args.twitchId,
      title = args.title,
      status = "Queued",
      jobId = args.jobId,
      callbackUrl = args.callbackUrl,
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
