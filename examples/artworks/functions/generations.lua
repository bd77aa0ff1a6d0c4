-- Generating artworks, and the generation log: every attempt, its outcome,
-- duration and cost, for the signed-in user or anonymous.
--
-- generations:generate is an action: it calls the user's model provider
-- with the user's own API key (userSettings.apiKeys), asks for the frames
-- of a looping animation, and records the outcome in one transaction
-- (generations:record): on success the artwork and a generations row with
-- success = true, on failure a generations row with success = false and
-- the error, and no artwork. A provider is any API that speaks OpenAI's
-- chat completions (POST {baseUrl}/chat/completions, the key sent as
-- `Authorization: Bearer <key>`); where each one is, the operator says with
-- generations:setProvider, and the public address is used otherwise.
local lib = require("lib")

local M = {}

-- The providers' public addresses; a providers row overrides one or adds one.
local PROVIDERS = {
  openai = "https://api.openai.com/v1",
  openrouter = "https://openrouter.ai/api/v1",
}
local DEFAULT_PROVIDER = "openai"
local DEFAULT_MODEL = "gpt-4o"

-- An artwork is one document (at most 1 MB): its frames together stay well below.
local MAX_FRAMES_BYTES = 512 * 1024

local SYSTEM_PROMPT = [[
You draw short looping animations as SVG. Answer with a JSON object
{"frames": [...]} and nothing else: exactly %d frames, each a complete
<svg> document of width %d and height %d, that played in order at %d
frames per second loop smoothly.]]

M.log = herald.mutation{
  args = {
    prompt = v.string(),
    success = v.boolean(),
    error = v.optional(v.string()),
    duration = v.number(),
    model = v.string(),
    cost = v.optional(v.number()),
  },
  handler = function(ctx, args)
    local identity = ctx.auth:getUserIdentity()
    local user = identity and lib.ensure_user(ctx, identity)
    return ctx.db:insert("generations", {
      userId = user and user._id,
      prompt = args.prompt,
      success = args.success,
      error = args.error,
      duration = args.duration,
      model = args.model,
      cost = args.cost,
      createdAt = lib.now(ctx),
    })
  end,
}

M.listMine = herald.query{
  args = {limit = v.optional(v.number())},
  handler = function(ctx, args)
    local user = lib.find_user(ctx, lib.identity(ctx))
    if not user then return herald.array{} end
    return ctx.db:query("generations")
      :withIndex("by_user", function(q) return q:eq("userId", user._id) end)
      :order("desc"):take(lib.limit(args.limit, 50, 500))
  end,
}

-- Recent generations of everyone, for the console.
M.listRecent = herald.internalQuery{
  args = {limit = v.optional(v.number())},
  handler = function(ctx, args)
    return ctx.db:query("generations"):withIndex("by_created"):order("desc")
      :take(lib.limit(args.limit, 50, 500))
  end,
}

local function provider_row(ctx, name)
  return ctx.db:query("providers")
    :withIndex("by_name", function(q) return q:eq("name", name) end)
    :unique()
end

-- The operator (admin key) says where a provider's API is:
-- {name = "openai", baseUrl = "https://gateway.example/v1"}.
M.setProvider = herald.internalMutation{
  args = {name = v.string(), baseUrl = v.string()},
  handler = function(ctx, args)
    if not args.name:match("^[%w_%-]+$") then lib.fail("INVALID_ARGUMENT", "A provider's name is letters, digits, - and _") end
    if not args.baseUrl:match("^https?://[^/]") then lib.fail("INVALID_ARGUMENT", "baseUrl must be an http:// or https:// URL") end
    return lib.put(ctx, "providers", provider_row(ctx, args.name),
                   {name = args.name, baseUrl = (args.baseUrl:gsub("/+$", "")), updatedAt = lib.now(ctx)})
  end,
}

-- What a generation of the signed-in caller uses: the provider (the one
-- asked for, else the user's preferredProvider, else openai), its address,
-- the model (likewise) and the user's newest key for that provider.
-- Internal: its answer holds the key, for the action only.
M.plan = herald.internalQuery{
  args = {provider = v.optional(v.string()), model = v.optional(v.string())},
  handler = function(ctx, args)
    local user = lib.find_user(ctx, lib.identity(ctx))
    local settings = user and ctx.db:query("userSettings")
      :withIndex("by_user", function(q) return q:eq("userId", user._id) end)
      :unique()
    local provider = args.provider or (settings and settings.preferredProvider) or DEFAULT_PROVIDER
    local row = provider_row(ctx, provider)
    local baseUrl = row and row.baseUrl or PROVIDERS[provider]
    if not baseUrl then lib.fail("UNKNOWN_PROVIDER", "No model provider named " .. provider) end
    local key
    for _, k in ipairs(settings and settings.apiKeys or {}) do
      if k.provider == provider and (not key or k.createdAt >= key.createdAt) then key = k end
    end
    if not key then
      lib.fail("NO_API_KEY", "Add an API key for " .. provider .. " in your settings first")
    end
    return {
      provider = provider,
      baseUrl = baseUrl,
      model = args.model or (settings and settings.preferredModel) or DEFAULT_MODEL,
      key = key.key,
    }
  end,
}

-- Writes a generation's outcome, in one transaction: the artwork when
-- there is one (through artworks:create, with its checks) and the
-- generations row. `duration` is in seconds, from the action's start to
-- this commit.
M.record = herald.internalMutation{
  args = {
    startedAt = v.number(),
    prompt = v.string(),
    model = v.string(),
    error = v.optional(v.string()),
    cost = v.optional(v.number()),
    artwork = v.optional(v.any()),
  },
  handler = function(ctx, args)
    local artworkId = args.artwork and ctx:runMutation("artworks:create", args.artwork)
    local user = lib.ensure_user(ctx, lib.identity(ctx))
    local generationId = ctx.db:insert("generations", {
      userId = user._id,
      prompt = args.prompt,
      success = artworkId ~= nil,
      error = args.error,
      duration = math.max(0, ctx.now - args.startedAt) / 1000,
      model = args.model,
      cost = args.cost,
      createdAt = lib.now(ctx),
    })
    return {generationId = generationId, artworkId = artworkId}
  end,
}

-- `text` without any copy of `secret` in it.
local function scrub(text, secret)
  if secret == "" then return text end
  local out, from = {}, 1
  while true do
    local i, j = text:find(secret, from, true)
    if not i then break end
    out[#out + 1] = text:sub(from, i - 1) .. "***"
    from = j + 1
  end
  out[#out + 1] = text:sub(from)
  return table.concat(out)
end

-- What went wrong with a provider's answer that is not 2xx.
local function provider_error(provider, res)
  local parsed, body = pcall(res.json)
  local said
  if parsed and type(body) == "table" then
    said = type(body.error) == "table" and body.error.message or body.error or body.message
  end
  if type(said) ~= "string" then said = res:text():sub(1, 200) end
  return provider .. " answered " .. res.status .. ": " .. said
end

-- The frames in a chat completion's answer, or nil and why not.
local function frames_of(res)
  local parsed, body = pcall(res.json)
  local choice = parsed and type(body) == "table" and type(body.choices) == "table" and body.choices[1]
  local content = type(choice) == "table" and type(choice.message) == "table" and choice.message.content
  if type(content) ~= "string" then return nil, "the provider's answer has no message" end
  content = content:match("^%s*```%w*%s*(.-)%s*```%s*$") or content -- a model may fence its JSON
  local decoded, answer = pcall(herald.json.decode, content)
  local frames = decoded and type(answer) == "table" and answer.frames
  if type(frames) ~= "table" or #frames == 0 then return nil, "the provider's answer has no frames" end
  local size = 0
  for _, frame in ipairs(frames) do
    if type(frame) ~= "string" then return nil, "a frame of the provider's answer is not a string" end
    size = size + #frame
  end
  if size > MAX_FRAMES_BYTES then return nil, "the provider's frames are too large (" .. size .. " bytes)" end
  local usage = type(body.usage) == "table" and body.usage or {}
  return frames, nil, type(usage.cost) == "number" and usage.cost or nil
end

local function whole(x, default, lo, hi, what)
  if x == nil then return default end
  if x ~= math.floor(x) or x < lo or x > hi then
    lib.fail("INVALID_ARGUMENT", what .. " must be a whole number from " .. lo .. " to " .. hi)
  end
  return math.tointeger(x)
end

-- Generates an artwork from a prompt with the caller's model provider.
-- Returns {artworkId, generationId}. A provider that fails, cannot be
-- reached or answers without frames gives a GENERATION_FAILED error, and
-- its generations row (success = false) is kept; no artwork is made.
M.generate = herald.action{
  args = {
    prompt = v.string(),
    provider = v.optional(v.string()),
    model = v.optional(v.string()),
    style = v.optional(v.string()),
    visibility = v.optional(lib.visibility()),
    width = v.optional(v.number()),
    height = v.optional(v.number()),
    fps = v.optional(v.number()),
    frameCount = v.optional(v.number()),
  },
  handler = function(ctx, args)
    lib.identity(ctx)
    if args.prompt == "" then lib.fail("INVALID_ARGUMENT", "The prompt is empty") end
    local width = whole(args.width, 512, 16, 2048, "width")
    local height = whole(args.height, 512, 16, 2048, "height")
    local fps = whole(args.fps, 12, 1, 60, "fps")
    local count = whole(args.frameCount, 8, 1, 60, "frameCount")
    local plan = ctx:runQuery("generations:plan", {provider = args.provider, model = args.model})
    local ask = args.prompt
    if args.style then ask = ask .. "\nStyle: " .. args.style end
    local sent, res = pcall(fetch, plan.baseUrl .. "/chat/completions", {
      method = "POST",
      headers = {Authorization = "Bearer " .. plan.key},
      body = {
        model = plan.model,
        messages = {
          {role = "system", content = SYSTEM_PROMPT:format(count, width, height, fps)},
          {role = "user", content = ask},
        },
        response_format = {type = "json_object"},
      },
    })
    local frames, failure, cost
    if not sent then
      failure = plan.provider .. " could not be reached: " .. tostring(res)
    elseif not res.ok then
      failure = provider_error(plan.provider, res)
    else
      frames, failure, cost = frames_of(res)
    end
    local outcome = {startedAt = ctx.now, prompt = args.prompt, model = plan.model, cost = cost}
    if frames then
      outcome.artwork = {
        prompt = args.prompt,
        frames = frames,
        metadata = {width = width, height = height, fps = fps, generator = "svg",
                    model = plan.model, style = args.style},
        visibility = args.visibility,
      }
    else
      outcome.error = scrub(failure, plan.key)
    end
    local recorded = ctx:runMutation("generations:record", outcome)
    if not frames then
      herald.error{code = "GENERATION_FAILED", message = outcome.error, generationId = recorded.generationId}
    end
    return recorded
  end,
}

return M
