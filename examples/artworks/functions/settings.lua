-- Per-user settings (userSettings, one document per users document).
-- API keys are stored for the generator; they are never sent back whole.
local lib = require("lib")

local DEFAULTS = {theme = "system", defaultVisibility = "private", emailNotifications = true}

local function settings_of(ctx, user)
  if not user then return nil end
  return ctx.db:query("userSettings")
    :withIndex("by_user", function(q) return q:eq("userId", user._id) end)
    :unique()
end

local function masked(keys)
  local out = herald.array{}
  for i, k in ipairs(keys or {}) do
    out[i] = {name = k.name, provider = k.provider, createdAt = k.createdAt,
              key = "..." .. k.key:sub(-4)}
  end
  return out
end

-- Writes a settings document, creating it with the defaults first.
local function save(ctx, fields)
  local user = lib.ensure_user(ctx, lib.identity(ctx))
  local s = settings_of(ctx, user)
  fields.updatedAt = lib.now(ctx)
  if s then
    ctx.db:patch(s._id, fields)
    return s._id
  end
  local doc = {userId = user._id}
  for k, val in pairs(DEFAULTS) do doc[k] = val end
  for k, val in pairs(fields) do doc[k] = val end
  return ctx.db:insert("userSettings", doc)
end

local M = {}

-- The caller's settings (the defaults until they change one).
M.get = herald.query{
  args = {},
  handler = function(ctx)
    local identity = lib.identity(ctx)
    local s = settings_of(ctx, lib.find_user(ctx, identity))
    local out = {}
    for k, val in pairs(DEFAULTS) do out[k] = val end
    if s then
      for k, val in pairs(s) do out[k] = val end
    end
    out.apiKeys = masked(s and s.apiKeys)
    return out
  end,
}

M.update = herald.mutation{
  args = {
    theme = v.optional(v.union(v.literal("light"), v.literal("dark"), v.literal("system"))),
    defaultVisibility = v.optional(v.union(v.literal("public"), v.literal("private"))),
    emailNotifications = v.optional(v.boolean()),
    preferredModel = v.optional(v.string()),
    preferredProvider = v.optional(v.string()),
  },
  handler = function(ctx, args)
    local fields = {}
    for _, k in ipairs({"theme", "defaultVisibility", "emailNotifications", "preferredModel", "preferredProvider"}) do
      lib.set_if(fields, k, args[k])
    end
    return save(ctx, fields)
  end,
}

-- Adds or replaces (by name) one API key.
M.setApiKey = herald.mutation{
  args = {name = v.string(), key = v.string(), provider = v.string()},
  handler = function(ctx, args)
    if args.name == "" or args.key == "" then lib.fail("INVALID_ARGUMENT", "name and key are required") end
    local s = settings_of(ctx, lib.ensure_user(ctx, lib.identity(ctx)))
    local keys = herald.array{}
    for _, k in ipairs(s and s.apiKeys or {}) do
      if k.name ~= args.name then keys[#keys + 1] = k end
    end
    keys[#keys + 1] = {name = args.name, key = args.key, provider = args.provider, createdAt = lib.now(ctx)}
    save(ctx, {apiKeys = keys})
    return #keys
  end,
}

M.removeApiKey = herald.mutation{
  args = {name = v.string()},
  handler = function(ctx, args)
    local s = settings_of(ctx, lib.ensure_user(ctx, lib.identity(ctx)))
    local keys = herald.array{}
    for _, k in ipairs(s and s.apiKeys or {}) do
      if k.name ~= args.name then keys[#keys + 1] = k end
    end
    save(ctx, {apiKeys = keys})
    return #keys
  end,
}

-- The generator (a trusted worker) reads a user's keys whole.
M.apiKeysFor = herald.internalQuery{
  args = {clerkId = v.string()},
  handler = function(ctx, args)
    local s = settings_of(ctx, lib.find_user(ctx, {subject = args.clerkId}))
    return s and s.apiKeys or herald.array{}
  end,
}

return M
