-- Fondation's HTTP routes (served under /http). The documentation worker
-- reports on a job here, with no session: it presents the job's callback
-- token, in `X-Callback-Token` or as `Authorization: Bearer <token>`.
--
--   POST /http/jobs/callback
--   {"jobId": "...", "status": "running" | "completed" | "failed", "message": "..."}
--   {"jobId": "...", "message": "...", "type": "log" | "tool" | "error"}
--
-- With a status, the job moves (jobs:updateStatus: pending → running →
-- completed or failed; `message` goes to its log); without one, `message`
-- is added to the job's log (messages:append). The token is checked
-- against the job's in constant time by those mutations, inside the
-- transaction that writes. Answers, JSON:
--   200 {"ok": true, ...}        done
--   400 {"error": "BAD_REQUEST"} no JSON body, no jobId, bad values
--   401 {"error": "MISSING_TOKEN"}
--   403 {"error": "INVALID_TOKEN"} a wrong token, or no such job (the same
--                                   answer, so that it tells a prober nothing)
--   409 {"error": "INVALID_TRANSITION" | "JOB_FINISHED"}

local http = herald.httpRouter()

local function answer(status, body, headers)
  headers = headers or {}
  headers["Content-Type"] = "application/json"
  headers["Cache-Control"] = "no-store"
  return {status = status, headers = headers, body = body}
end

local function refuse(status, code, message, headers)
  return answer(status, {error = code, message = message}, headers)
end

-- The token the worker presented, or nil.
local function presented_token(req)
  local token = req.headers["x-callback-token"]
  if token and token ~= "" then return token end
  return (req.headers["authorization"] or ""):match("^[Bb]earer +(%S+) *$")
end

-- The app's error codes and what they answer.
local STATUS_OF = {INVALID_TOKEN = 403, INVALID_TRANSITION = 409, JOB_FINISHED = 409}

http:route{
  path = "/jobs/callback",
  method = "POST",
  headers = {"X-Callback-Token"},
  handler = herald.httpAction(function(ctx, req)
    local token = presented_token(req)
    if not token then
      return refuse(401, "MISSING_TOKEN", "Present the job's callback token (X-Callback-Token or Authorization: Bearer)",
                    {["WWW-Authenticate"] = 'Bearer realm="fondation-jobs"'})
    end
    local parsed, body = pcall(req.json)
    if not parsed or type(body) ~= "table" or type(body.jobId) ~= "string" then
      return refuse(400, "BAD_REQUEST", "The body is a JSON object with a jobId")
    end
    local done, result = pcall(function()
      if body.status ~= nil then
        return ctx:runMutation("jobs:updateStatus", {jobId = body.jobId, callbackToken = token,
                                                     status = body.status, message = body.message})
      end
      return {messageId = ctx:runMutation("messages:append", {jobId = body.jobId, callbackToken = token,
                                                             content = body.message, type = body.type or "log"})}
    end)
    if done then
      result.ok = true
      return answer(200, result)
    end
    if type(result) ~= "table" then error(result, 0) end
    if result.code == "ValidationError" then return refuse(400, "BAD_REQUEST", result.message) end
    local code = result.data and result.data.code
    if STATUS_OF[code] then return refuse(STATUS_OF[code], code, result.message) end
    error(result, 0)
  end),
}

return http
