-- Helpers shared by the artworks app's modules (`require("lib")`): who is
-- calling, ISO dates, and who may see an artwork. No callable functions.

local M = {}

M.visibility = function()
  return v.union(v.literal("public"), v.literal("private"), v.literal("unlisted"))
end

-- Errors the app's clients switch on: FunctionError with data.code.
function M.fail(code, message)
  herald.error{code = code, message = message}
end

-- The signed-in Clerk identity, or a refusal.
function M.identity(ctx)
  local identity = ctx.auth:getUserIdentity()
  if not identity then M.fail("UNAUTHENTICATED", "Sign in first") end
  return identity
end

-- Dates are ISO 8601 strings in UTC with milliseconds, as JavaScript's
-- toISOString() writes them: fixed width, so they sort as they compare.
function M.iso(ms)
  ms = math.floor(ms)
  return os.date("!%Y-%m-%dT%H:%M:%S", ms // 1000) .. string.format(".%03dZ", ms % 1000)
end

function M.now(ctx)
  return M.iso(ctx.now)
end

-- Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = y // 400
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = (153 * mp + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

-- Milliseconds since the epoch of an ISO 8601 date-time with a zone
-- ("2025-01-31T12:00:00Z", "...00.5+02:00"), or nil if it is not one.
function M.parse_iso(s)
  if type(s) ~= "string" then return nil end
  local y, mo, d, h, mi, sec, frac, zone =
    s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)(%.?%d*)(.*)$")
  if not y then return nil end
  y, mo, d, h, mi, sec = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(sec)
  if mo < 1 or mo > 12 or d < 1 or h > 23 or mi > 59 or sec > 59 then return nil end
  local mdays = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}
  if (y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0 then mdays[2] = 29 end
  if d > mdays[mo] then return nil end
  local ms = 0
  if frac ~= "" then
    if #frac < 2 or #frac > 10 then return nil end
    ms = math.floor(tonumber("0" .. frac) * 1000)
  end
  local offset = 0
  if zone ~= "Z" then
    local sign, oh, om = zone:match("^([+-])(%d%d):(%d%d)$")
    if not sign then return nil end
    offset = (tonumber(oh) * 60 + tonumber(om)) * 60000
    if sign == "-" then offset = -offset end
  end
  local days = days_from_civil(y, mo, d)
  return ((days * 24 + h) * 60 + mi) * 60000 + sec * 1000 + ms - offset
end

-- The users document of a Clerk identity (nil if users:upsert never ran).
function M.find_user(ctx, identity)
  return ctx.db:query("users")
    :withIndex("by_clerk_id", function(q) return q:eq("clerkId", identity.subject) end)
    :unique()
end

-- The caller's users document, made from the identity on first use.
function M.ensure_user(ctx, identity)
  local user = M.find_user(ctx, identity)
  if user then return user end
  local now = M.now(ctx)
  local id = ctx.db:insert("users", {
    clerkId = identity.subject,
    email = identity.email or "",
    name = identity.name,
    imageUrl = identity.pictureUrl,
    createdAt = now,
    updatedAt = now,
  })
  return ctx.db:get(id)
end

-- Public and unlisted artworks are for anyone who has their id; private
-- ones for their owner only.
function M.may_see(artwork, identity)
  if artwork.visibility ~= "private" then return true end
  return identity ~= nil and identity.subject == artwork.userId
end

-- The artwork of `id` that the caller may see, or a refusal.
function M.visible_artwork(ctx, id, identity)
  local artwork = ctx.db:get(id)
  if not artwork then M.fail("NOT_FOUND", "No such artwork") end
  if not M.may_see(artwork, identity) then M.fail("FORBIDDEN", "This artwork is private") end
  return artwork
end

-- The artwork of `id` if the caller owns it, or a refusal.
function M.owned_artwork(ctx, id, identity)
  local artwork = ctx.db:get(id)
  if not artwork then M.fail("NOT_FOUND", "No such artwork") end
  if artwork.userId ~= identity.subject then
    M.fail("FORBIDDEN", "Only the artwork's owner may do this")
  end
  return artwork
end

-- Puts `doc` in place of `existing` (a document of `table_name`), or
-- inserts it when there is none; returns its id.
function M.put(ctx, table_name, existing, doc)
  if existing then
    ctx.db:replace(existing._id, doc)
    return existing._id
  end
  return ctx.db:insert(table_name, doc)
end

-- A patch field the caller left out stays as it is.
function M.set_if(fields, name, value)
  if value ~= nil then fields[name] = value end
end

-- Convex's paginationOpts (what usePaginatedQuery sends).
function M.pagination_opts()
  return v.paginationOpts()
end

function M.page_of(query, opts)
  opts = opts or {}
  local n = opts.numItems or 20
  if n < 1 or n > 100 or n ~= math.floor(n) then
    M.fail("INVALID_ARGUMENT", "paginationOpts.numItems must be a whole number from 1 to 100")
  end
  local cursor = opts.cursor
  if cursor == herald.null then cursor = nil end
  return query:paginate{numItems = math.floor(n), cursor = cursor, endCursor = opts.endCursor,
                        maximumRowsRead = opts.maximumRowsRead, maximumBytesRead = opts.maximumBytesRead}
end

function M.limit(n, default, max)
  if n == nil then return default end
  if n < 1 or n ~= math.floor(n) then M.fail("INVALID_ARGUMENT", "limit must be a whole number >= 1") end
  return math.min(math.floor(n), max)
end

return M
