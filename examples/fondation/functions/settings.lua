-- App-wide settings (not in seed 003), set by the operator with the admin
-- key and read by the app's actions. Both functions are internal: no
-- client reads or changes them.
--
--   githubApiUrl   the GitHub REST API repositories:sync reads; unset, the
--                  real one (https://api.github.com). A GitHub Enterprise
--                  server's is https://HOST/api/v3.

local DEFAULTS = {githubApiUrl = "https://api.github.com"}

-- Each key's check of a new value: the value to keep, or an error.
local CHECKS = {
  githubApiUrl = function(value)
    if not value:match("^https?://[^/]") then
      herald.error{code = "INVALID_SETTING", message = "githubApiUrl must be an http:// or https:// URL"}
    end
    return (value:gsub("/+$", ""))
  end,
}

local M = {}

local function row(ctx, key)
  return ctx.db:query("settings")
    :withIndex("by_key", function(q) return q:eq("key", key) end)
    :unique()
end

-- Sets one setting; `value` null puts its default back.
M.set = herald.internalMutation{
  args = {key = v.string(), value = v.nullable(v.string())},
  handler = function(ctx, args)
    local check = CHECKS[args.key]
    if not check then
      herald.error{code = "UNKNOWN_SETTING", message = "No setting named " .. args.key}
    end
    local existing = row(ctx, args.key)
    if args.value == herald.null then
      if existing then ctx.db:delete(existing._id) end
      return nil
    end
    local value = check(args.value)
    if existing then
      ctx.db:patch(existing._id, {value = value, updatedAt = ctx.now})
    else
      ctx.db:insert("settings", {key = args.key, value = value, updatedAt = ctx.now})
    end
    return value
  end,
}

-- A setting's value, its default when it was never set.
M.get = herald.internalQuery{
  args = {key = v.string()},
  handler = function(ctx, args)
    local r = row(ctx, args.key)
    if r then return r.value end
    return DEFAULTS[args.key]
  end,
}

return M
