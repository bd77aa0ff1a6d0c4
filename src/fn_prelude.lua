-- The Lua side of Herald's function runtime, run once in every fresh state
-- before the app's modules (docs/functions.md). It defines `herald`, `v`,
-- and the ctx.db query builder on top of the C primitives in P; it must
-- never give app code a way around the sandbox (no io, os, debug, files),
-- nor a table that one call could change for the next: app code gets
-- read-only views (P.readonly) of every table defined here, and the
-- metatables of the builder's objects are protected. The prelude runs with
-- globals of its own (a copy of the base functions and the writable
-- libraries); it returns the views of `herald`, `v` and `os`.
local P = ...
local ARRAY_MT, BYTES_MT, INT64_MT = P.ARRAY_MT, P.BYTES_MT, P.INT64_MT
local FN_MT, V_MT, ERROR_MT = P.FN_MT, P.V_MT, P.ERROR_MT
local setmetatable, type, error, pairs, select = P.setmetatable, type, error, pairs, select
local getmetatable = P.rawmeta -- the builder's metatables hide behind __metatable
local readonly = P.readonly
local tag = P.tag -- getmetatable() cannot see the protected metatables

herald = {null = P.NULL, unset = P.UNSET}

function herald.array(t)
  t = t or {}
  if type(t) ~= "table" then error("herald.array expects a table", 2) end
  return setmetatable(t, ARRAY_MT)
end

function herald.bytes(s)
  if type(s) ~= "string" then error("herald.bytes expects a string", 2) end
  return setmetatable({data = s}, BYTES_MT)
end

function herald.int64(n)
  if math.type(n) ~= "integer" then error("herald.int64 expects an integer", 2) end
  return setmetatable({value = n}, INT64_MT)
end

-- int64 values behave like BigInts: arithmetic and comparison among
-- themselves and with Lua integers, never silently becoming floats.
local function i64(x)
  if tag(x) == "int64" then return x.value end
  if math.type(x) == "integer" then return x end
  error("an int64 mixes only with int64 values and integers", 3)
end
for name, f in pairs({
  __add = function(a, b) return a + b end, __sub = function(a, b) return a - b end,
  __mul = function(a, b) return a * b end, __idiv = function(a, b) return a // b end,
  __mod = function(a, b) return a % b end}) do
  INT64_MT[name] = function(a, b) return herald.int64(f(i64(a), i64(b))) end
end
INT64_MT.__unm = function(a) return herald.int64(-a.value) end
INT64_MT.__eq = function(a, b) return i64(a) == i64(b) end
INT64_MT.__lt = function(a, b) return i64(a) < i64(b) end
INT64_MT.__le = function(a, b) return i64(a) <= i64(b) end
INT64_MT.__tostring = function(a) return tostring(a.value) end
INT64_MT.__concat = function(a, b)
  return (tag(a) == "int64" and tostring(a.value) or a) .. (tag(b) == "int64" and tostring(b.value) or b)
end
BYTES_MT.__len = function(b) return #b.data end
BYTES_MT.__eq = function(a, b) return a.data == b.data end

function herald.isArray(t) return tag(t) == "array" end

-- A structured error, like ConvexError: its data reaches the caller.
function herald.error(data)
  local message = type(data) == "string" and data
    or (type(data) == "table" and type(data.message) == "string" and data.message)
    or "function error"
  error(setmetatable({code = "FunctionError", message = message, data = data}, ERROR_MT), 2)
end

herald.token = P.token
herald.tokenEqual = P.token_equal

-- ---- validators: the same v.* as schema.ts, as tables in the canonical JSON form
local function V(t) return setmetatable(t, V_MT) end
local function isv(x) return tag(x) == "validator" end
local function needv(x, what)
  if not isv(x) then error(what .. " must be a validator (v.string(), ...)", 3) end
  return x
end

v = {}
for _, name in ipairs({"string", "boolean", "null", "bytes", "any", "int64"}) do
  v[name] = function() return V({type = name}) end
end
v.number = function() return V({type = "number"}) end
v.float64 = v.number
v.bigint = v.int64
function v.id(table)
  if type(table) ~= "string" then error("v.id expects a table name", 2) end
  return V({type = "id", table = table})
end
function v.literal(x) return V({type = "literal", value = x}) end
function v.array(item) return V({type = "array", items = needv(item, "v.array's item")}) end
function v.object(fields)
  if type(fields) ~= "table" then error("v.object expects a table of validators", 2) end
  for k, f in pairs(fields) do needv(f, "field " .. tostring(k)) end
  return V({type = "object", fields = fields})
end
function v.record(keys, values)
  return V({type = "record", keys = needv(keys, "record keys"), values = needv(values, "record values")})
end
function v.union(...)
  local members = herald.array({})
  for i = 1, select("#", ...) do members[i] = needv((select(i, ...)), "a union member") end
  return V({type = "union", members = members})
end
function v.optional(x)
  needv(x, "v.optional's argument")
  local c = {}
  for k, val in pairs(x) do c[k] = val end
  c.optional = true
  return V(c)
end
function v.nullable(x) return v.union(x, v.null()) end
-- Convex's paginationOptsValidator: the paginationOpts a paginated query takes.
function v.paginationOpts()
  return v.object({
    numItems = v.number(),
    cursor = v.union(v.string(), v.null()),
    endCursor = v.optional(v.union(v.string(), v.null())),
    id = v.optional(v.number()),
    maximumRowsRead = v.optional(v.number()),
    maximumBytesRead = v.optional(v.number()),
  })
end

-- ---- function definitions
local function define(kind, internal)
  return function(def)
    if type(def) == "function" then def = {handler = def} end
    if type(def) ~= "table" or type(def.handler) ~= "function" then
      error("a function definition needs a `handler` function", 2)
    end
    local args = def.args
    if args ~= nil and not isv(args) then
      if type(args) ~= "table" then error("`args` must be a table of validators", 2) end
      for k, f in pairs(args) do
        if not isv(f) then error("args." .. tostring(k) .. " must be a validator (v.string(), ...)", 2) end
      end
      args = v.object(args)
    end
    if def.returns ~= nil then needv(def.returns, "`returns`") end
    return setmetatable({kind = kind, internal = internal, args = args, returns = def.returns,
                         handler = def.handler}, FN_MT)
  end
end
herald.query = define("query", false)
herald.mutation = define("mutation", false)
herald.internalQuery = define("query", true)
herald.internalMutation = define("mutation", true)
herald.action = define("action", false)
herald.internalAction = define("action", true)

-- ---- ctx.db: methods work with ':' (Lua) and with '.' (as Convex code reads)
local function method(obj, f)
  return function(a, ...)
    if a == obj then return f(...) end
    return f(a, ...)
  end
end

-- The builder's objects (ranges, queries, searches) are per call; their
-- methods live in tables that are not their metatables, so that neither
-- getmetatable(q) nor q.__index reaches a table shared by every call.
local function methods_of(m) return {__index = m, __metatable = false} end
local Range = {}
local RANGE_MT = methods_of(Range)
for _, op in ipairs({"eq", "gt", "gte", "lt", "lte"}) do
  Range[op] = function(self, field, value)
    if type(field) ~= "string" then error("q:" .. op .. " expects a field name", 2) end
    if value == nil then error("q:" .. op .. "(\"" .. field .. "\", nil): use herald.null for null", 2) end
    self.conds[#self.conds + 1] = {[op] = herald.array({field, value})}
    return self
  end
end

local Field = {__metatable = false}
local Expr = {__metatable = false}
local function operand(x)
  if getmetatable(x) == Field then return {field = x.name} end
  if getmetatable(x) == Expr then error("a comparison operand cannot be a condition", 3) end
  return {literal = x == nil and P.NULL or x}
end
local function expr(x)
  if getmetatable(x) ~= Expr then error("expected a condition (q:eq(...), q:and_(...), ...)", 3) end
  return x.e
end
local F = {}
function F:field(name)
  if type(name) ~= "string" then error("q:field expects a field name", 2) end
  return setmetatable({name = name}, Field)
end
for _, op in ipairs({"eq", "neq", "lt", "lte", "gt", "gte"}) do
  F[op] = function(self, a, b) return setmetatable({e = {[op] = herald.array({operand(a), operand(b)})}}, Expr) end
end
local function logical(op)
  return function(self, ...)
    local list = herald.array({})
    for i = 1, select("#", ...) do list[i] = expr((select(i, ...))) end
    return setmetatable({e = {[op] = list}}, Expr)
  end
end
F.and_ = logical("and")
F.or_ = logical("or")
F["and"] = F.and_
F["or"] = F.or_
function F:not_(x) return setmetatable({e = {["not"] = expr(x)}}, Expr) end
F["not"] = F.not_
F = readonly(F, "q")

local Query = {}
local QUERY_MT = methods_of(Query)
function Query:withIndex(name, build)
  if type(name) ~= "string" then error("withIndex expects an index name", 2) end
  self.q.index = name
  if build ~= nil then
    local r = setmetatable({conds = herald.array({})}, RANGE_MT)
    local got = build(r)
    if got ~= nil and getmetatable(got) ~= RANGE_MT then error("withIndex's function must return q", 2) end
    self.q.range = r.conds
  end
  return self
end
local Search = {}
local SEARCH_MT = methods_of(Search)
function Search:search(field, text)
  if type(field) ~= "string" or type(text) ~= "string" then
    error("q:search expects a field name and a text", 2)
  end
  self.field, self.text = field, text
  return self
end
function Search:eq(field, value)
  if type(field) ~= "string" then error("q:eq expects a field name", 2) end
  self.filters[#self.filters + 1] = herald.array({field, value == nil and P.NULL or value})
  return self
end
function Query:withSearchIndex(name, build)
  if type(name) ~= "string" or type(build) ~= "function" then
    error("withSearchIndex expects an index name and a function", 2)
  end
  local s = setmetatable({filters = herald.array({})}, SEARCH_MT)
  build(s)
  if not s.text then error("withSearchIndex's function must call q:search(field, text)", 2) end
  self.search = {table = self.q.table, index = name, field = s.field, search = s.text,
                 filters = s.filters}
  return self
end
function Query:filter(build)
  local e = expr(build(F))
  if self.q.filter then
    self.q.filter = {["and"] = herald.array({self.q.filter, e})}
  else
    self.q.filter = e
  end
  return self
end
function Query:order(o)
  if o ~= "asc" and o ~= "desc" then error('order must be "asc" or "desc"', 2) end
  self.q.order = o
  return self
end
local function finish(self, key, value)
  if self.search then
    if key == "paginate" or key == "unique" or self.q.filter or self.q.order or self.q.index then
      error("after withSearchIndex use take(n), first() or collect()", 3)
    end
    self.search[key] = value
    local r = P.search(self.search)
    self.search[key] = nil
    return r
  end
  self.q[key] = value
  local r = P.run(self.q)
  self.q[key] = nil
  return r
end
function Query:collect() return finish(self, "collect", true) end
function Query:take(n)
  if math.type(n) ~= "integer" and not (type(n) == "number" and n == math.floor(n)) then
    error("take expects a whole number", 2)
  end
  return finish(self, "take", n)
end
function Query:first() return finish(self, "first", true) end
function Query:unique() return finish(self, "unique", true) end
-- Convex's paginationOpts; `id` is the client's and is not needed here.
function Query:paginate(opts)
  if type(opts) ~= "table" then error("paginate expects {numItems = n, cursor = ...}", 2) end
  return finish(self, "paginate", {numItems = opts.numItems, cursor = opts.cursor or P.NULL,
                                   endCursor = opts.endCursor, maximumRowsRead = opts.maximumRowsRead,
                                   maximumBytesRead = opts.maximumBytesRead})
end

-- ctx.db and ctx.auth are views shared by every call; their methods know
-- the view, so that ctx.db:get(id) and ctx.db.get(id) both work.
local db_methods = {}
local db = readonly(db_methods, "ctx.db")
db_methods.get = method(db, function(id) return P.get(id) end)
db_methods.query = method(db, function(table)
  if type(table) ~= "string" then error("ctx.db:query expects a table name", 2) end
  return setmetatable({q = {table = table}}, QUERY_MT)
end)
db_methods.insert = method(db, P.insert)
db_methods.patch = method(db, P.patch)
db_methods.replace = method(db, P.replace)
db_methods.delete = method(db, P.delete)
db_methods.normalizeId = method(db, P.normalize_id)
-- ctx.db.system reads the system tables (`_storage`), as in Convex.
local system_methods = {}
local system = readonly(system_methods, "ctx.db.system")
system_methods.get = method(system, function(id) return P.get(id) end)
system_methods.query = method(system, function(table)
  if type(table) ~= "string" or table:sub(1, 1) ~= "_" then
    error("ctx.db.system:query expects a system table name (\"_storage\")", 2)
  end
  return setmetatable({q = {table = table}}, QUERY_MT)
end)
db_methods.system = system

-- ctx.storage: files (docs/functions.md, "Files").
local storage_methods = {}
local storage = readonly(storage_methods, "ctx.storage")
storage_methods.generateUploadUrl = method(storage, P.storage_upload_url)
storage_methods.getUrl = method(storage, P.storage_url)
storage_methods.getMetadata = method(storage, P.storage_meta)
storage_methods.delete = method(storage, P.storage_delete)

-- ctx.scheduler: mutations run later (docs/functions.md, "The scheduler").
local scheduler_methods = {}
local scheduler = readonly(scheduler_methods, "ctx.scheduler")
scheduler_methods.runAfter = method(scheduler, P.schedule_after)
scheduler_methods.runAt = method(scheduler, P.schedule_at)
scheduler_methods.cancel = method(scheduler, P.schedule_cancel)

local auth_methods = {}
local auth = readonly(auth_methods, "ctx.auth")
auth_methods.getUserIdentity = method(auth, P.identity)
auth_methods.isAdmin = method(auth, P.is_admin)

-- The context each handler receives; runQuery/runMutation call other
-- functions of the app inside the same transaction.
local function ctx_method(f)
  return function(self, ...)
    if type(self) == "table" and self.auth == auth then return f(...) end
    return f(self, ...)
  end
end
local run_query, run_mutation = ctx_method(P.run_query), ctx_method(P.run_mutation)

-- ctx.vectorSearch(table, index, {vector, limit, filter}) as in Convex; the
-- filter function gets q with q.eq(field, value) and q.or(...) (also with
-- ':'), and what it returns becomes a list of [field, value] alternatives.
local VECTOR_FILTER = {}
local vq_methods = {}
local vq = readonly(vq_methods, "q")
local function vector_alternatives(x, level)
  if type(x) ~= "table" or x[VECTOR_FILTER] == nil then
    error("a vector filter is q.eq(field, value) or q.or(...)", level)
  end
  return x[VECTOR_FILTER]
end
vq_methods.eq = method(vq, function(field, value)
  if type(field) ~= "string" then error("q.eq expects a field name", 2) end
  return {[VECTOR_FILTER] = {herald.array({field, value == nil and P.NULL or value})}}
end)
vq_methods["or"] = method(vq, function(...)
  local all = {}
  for i = 1, select("#", ...) do
    for _, alt in ipairs(vector_alternatives((select(i, ...)), 3)) do all[#all + 1] = alt end
  end
  return {[VECTOR_FILTER] = all}
end)
vq_methods.or_ = vq_methods["or"]
local vector_search = ctx_method(function(table, index, opts)
  if type(table) ~= "string" or type(index) ~= "string" or type(opts) ~= "table" then
    error("ctx.vectorSearch expects a table name, an index name and {vector = {...}}", 2)
  end
  if type(opts.vector) ~= "table" then error("ctx.vectorSearch needs vector = {numbers}", 2) end
  local vector = herald.array({})
  for i, x in ipairs(opts.vector) do vector[i] = x end
  local spec = {table = table, index = index, vector = vector, limit = opts.limit}
  if opts.filter ~= nil then
    if type(opts.filter) ~= "function" then error("vectorSearch's filter must be a function", 2) end
    spec.filter = herald.array(vector_alternatives(opts.filter(vq), 2))
  end
  return P.vector_search(spec)
end)
P.make_ctx = function(now)
  return {db = db, auth = auth, storage = storage, scheduler = scheduler, now = now, runQuery = run_query,
          runMutation = run_mutation, vectorSearch = vector_search}
end

-- ---- actions (docs/functions.md, "Actions"): no transaction; reads run
-- on snapshots of their own, writes are mutations of their own.
local with_snapshot = P.with_snapshot
local action_write = P.action_write
local action_storage_methods = {}
local action_storage = readonly(action_storage_methods, "ctx.storage")
action_storage_methods.generateUploadUrl = method(action_storage, P.storage_upload_url)
action_storage_methods.getUrl = method(action_storage, function(id) return with_snapshot(P.storage_url, id) end)
action_storage_methods.getMetadata = method(action_storage, function(id) return with_snapshot(P.storage_meta, id) end)
action_storage_methods.store = method(action_storage, function(data, opts)
  if tag(data) == "bytes" then data = data.data end
  if type(data) ~= "string" then error("ctx.storage.store expects a string or herald.bytes", 2) end
  if opts ~= nil and type(opts) ~= "table" then error("ctx.storage.store's options must be a table", 2) end
  return P.action_store(data, opts and opts.contentType)[1]
end)
action_storage_methods.delete = method(action_storage, function(id)
  action_write("@herald:storageDelete", {id = id})
end)
local action_scheduler_methods = {}
local action_scheduler = readonly(action_scheduler_methods, "ctx.scheduler")
local function schedule_from_action(at, fn, args)
  if type(at) ~= "number" or at ~= at or at < 0 then error("the time must be a number of milliseconds", 3) end
  if type(fn) ~= "string" then error("ctx.scheduler expects a function path (\"module:name\")", 3) end
  return action_write("@herald:schedule", {at = at, name = fn, args = args or {}})
end
action_scheduler_methods.runAfter = method(action_scheduler, function(ms, fn, args)
  if type(ms) ~= "number" then error("the delay must be a number of milliseconds", 2) end
  return schedule_from_action(P.clock_ms() + ms, fn, args)
end)
action_scheduler_methods.runAt = method(action_scheduler, function(at, fn, args)
  return schedule_from_action(at, fn, args)
end)
action_scheduler_methods.cancel = method(action_scheduler, function(id)
  if type(id) ~= "string" then error("ctx.scheduler.cancel expects an id", 2) end
  action_write("@herald:cancel", {id = id})
end)
local make_action_ctx
local action_run_query = ctx_method(function(path, args) return with_snapshot(P.run_query, path, args) end)
local action_run_mutation = ctx_method(action_write)
local action_run_action = ctx_method(function(path, args)
  local handler, a = P.action_prepare(path, args)
  return P.action_result(path, handler(make_action_ctx(P.clock_ms()), a))
end)
local action_vector_search = ctx_method(function(...) return with_snapshot(vector_search, ...) end)
make_action_ctx = function(now)
  return {auth = auth, storage = action_storage, scheduler = action_scheduler, now = now, clock = P.clock_ms,
          runQuery = action_run_query, runMutation = action_run_mutation,
          runAction = action_run_action, vectorSearch = action_vector_search}
end
P.make_action_ctx = make_action_ctx

-- herald.json: JSON text to values and back, for fetch bodies and HTTP routes.
herald.json = readonly({encode = P.json_encode, decode = P.json_decode}, "herald.json")

-- fetch(url, {method, headers, body}) in actions: the action waits for the
-- response (docs/functions.md, "fetch"). A table body is sent as JSON.
local function fetch(url, opts)
  if type(url) ~= "string" then error("fetch expects a URL", 2) end
  if opts ~= nil and type(opts) ~= "table" then error("fetch's options must be a table", 2) end
  opts = opts or {}
  local headers, body = opts.headers, opts.body
  if type(body) == "table" and tag(body) ~= "bytes" then
    body = P.json_encode(body)
    local h = {}
    local typed = false
    for k, val in pairs(headers or {}) do
      h[k] = val
      if type(k) == "string" and k:lower() == "content-type" then typed = true end
    end
    if not typed then h["content-type"] = "application/json" end
    headers = h
  elseif tag(body) == "bytes" then
    body = body.data
  end
  local status, hdrs, text, final = P.fetch(url, opts.method, headers, body)
  local res = {status = status, ok = status >= 200 and status < 300, headers = hdrs, url = final}
  res.text = function() return text end
  res.json = function() return P.json_decode(text) end
  res.bytes = function() return herald.bytes(text) end
  return res
end

-- herald.httpAction(handler): a handler for functions/http.lua's routes. It
-- gets ctx (an action's) and the request, and returns a response table
-- {status = 200, headers = {...}, body = string, bytes or a table (JSON)}.
local function http_response(r)
  if r == nil then return {status = 200, headers = herald.array({}), body = herald.bytes("")} end
  if type(r) ~= "table" then error("an HTTP action returns {status = ..., headers = ..., body = ...}", 3) end
  local status = r.status or 200
  if math.type(status) ~= "integer" and not (type(status) == "number" and status == math.floor(status)) then
    error("the response's status must be a whole number", 3)
  end
  local list = herald.array({})
  local typed = false
  for k, val in pairs(r.headers or {}) do
    if type(k) ~= "string" or type(val) ~= "string" then error("response headers map names to strings", 3) end
    if k:lower() == "content-type" then typed = true end
    list[#list + 1] = herald.array({k, val})
  end
  local body = r.body
  if body == nil then
    body = ""
  elseif type(body) == "table" and tag(body) ~= "bytes" then
    body = P.json_encode(body)
    if not typed then list[#list + 1] = herald.array({"Content-Type", "application/json"}) end
  elseif tag(body) == "bytes" then
    body = body.data
  elseif type(body) ~= "string" then
    error("the response's body must be a string, herald.bytes or a table", 3)
  end
  return {status = math.tointeger(status), headers = list, body = herald.bytes(body)}
end
function herald.httpAction(handler)
  if type(handler) ~= "function" then error("herald.httpAction expects a function(ctx, request)", 2) end
  return setmetatable({kind = "action", internal = true, http = true, handler = function(ctx, req)
    local body = req.body and req.body.data
    req.body = body
    req.text = function() return body or "" end
    req.json = function() return P.json_decode(body or "") end
    return http_response(handler(ctx, req))
  end}, FN_MT)
end

-- herald.httpRouter(): functions/http.lua returns one, with its routes.
local Router = {}
local ROUTER_MT = methods_of(Router)
local METHODS = {GET = true, POST = true, PUT = true, PATCH = true, DELETE = true, OPTIONS = true, HEAD = true}
function Router:route(r)
  if type(r) ~= "table" then error("http:route expects {path = ..., method = ..., handler = ...}", 2) end
  if (r.path == nil) == (r.pathPrefix == nil) then error("a route has a path or a pathPrefix (one of them)", 2) end
  local p = r.path or r.pathPrefix
  if type(p) ~= "string" or p:sub(1, 1) ~= "/" then error("a route's path starts with /", 2) end
  if r.pathPrefix and p:sub(-1) ~= "/" then error("a pathPrefix ends with /", 2) end
  if type(r.method) ~= "string" or not METHODS[r.method] then
    error("a route's method is GET, POST, PUT, PATCH, DELETE, OPTIONS or HEAD", 2)
  end
  if tag(r.handler) ~= "function" or not r.handler.http then
    error("a route's handler is a herald.httpAction(...)", 2)
  end
  local headers = {}
  for i, h in ipairs(r.headers or {}) do
    if type(h) ~= "string" or not h:match("^[%w%-]+$") then error("a route's headers are header names", 2) end
    headers[i] = h
  end
  self.routes[#self.routes + 1] = {path = r.path, prefix = r.pathPrefix, method = r.method,
                                   handler = r.handler, headers = headers}
end
function herald.httpRouter() return setmetatable({routes = {}, [P.ROUTES] = true}, ROUTER_MT) end

-- herald.cronJobs(): functions/crons.lua returns one, with its schedules
-- (Convex's shapes; times in UTC). A missed run runs once at start.
local Crons = {}
local CRONS_MT = methods_of(Crons)
local DAYS = {sunday = "0", monday = "1", tuesday = "2", wednesday = "3", thursday = "4", friday = "5", saturday = "6"}
local function whole(x, lo, hi, what)
  if type(x) ~= "number" or x ~= math.floor(x) or x < lo or x > hi then
    error(what .. " must be a whole number from " .. lo .. " to " .. hi, 4)
  end
  return tostring(math.tointeger(x))
end
local function add_cron(self, name, entry, fn, args)
  if type(name) ~= "string" or name == "" then error("a cron needs a name", 3) end
  for _, c in ipairs(self.list) do
    if c.name == name then error("two crons are named \"" .. name .. "\"", 3) end
  end
  if type(fn) ~= "string" then error("a cron runs a function path (\"module:name\")", 3) end
  if args ~= nil and type(args) ~= "table" then error("a cron's args must be a table", 3) end
  entry.name, entry.fn, entry.args = name, fn, args or {}
  self.list[#self.list + 1] = entry
end
function Crons:interval(name, every, fn, args)
  if type(every) ~= "table" then error("crons:interval expects {seconds|minutes|hours = n}", 2) end
  local ms = (every.seconds or 0) * 1000 + (every.minutes or 0) * 60000 + (every.hours or 0) * 3600000
  if type(ms) ~= "number" or ms < 1000 or ms ~= ms then error("a cron interval is at least one second", 2) end
  add_cron(self, name, {interval = ms}, fn, args)
end
function Crons:cron(name, expr, fn, args)
  if type(expr) ~= "string" then error("crons:cron expects a cron expression", 2) end
  add_cron(self, name, {cron = expr}, fn, args)
end
function Crons:hourly(name, at, fn, args)
  add_cron(self, name, {cron = whole(at.minuteUTC or 0, 0, 59, "minuteUTC") .. " * * * *"}, fn, args)
end
function Crons:daily(name, at, fn, args)
  add_cron(self, name, {cron = whole(at.minuteUTC or 0, 0, 59, "minuteUTC") .. " " ..
    whole(at.hourUTC or 0, 0, 23, "hourUTC") .. " * * *"}, fn, args)
end
function Crons:weekly(name, at, fn, args)
  local day = type(at.dayOfWeek) == "string" and DAYS[at.dayOfWeek:lower()]
  if not day then error("dayOfWeek is a day's name (\"monday\")", 2) end
  add_cron(self, name, {cron = whole(at.minuteUTC or 0, 0, 59, "minuteUTC") .. " " ..
    whole(at.hourUTC or 0, 0, 23, "hourUTC") .. " * * " .. day}, fn, args)
end
function Crons:monthly(name, at, fn, args)
  add_cron(self, name, {cron = whole(at.minuteUTC or 0, 0, 59, "minuteUTC") .. " " ..
    whole(at.hourUTC or 0, 0, 23, "hourUTC") .. " " .. whole(at.day or 1, 1, 31, "day") .. " * *"}, fn, args)
end
function herald.cronJobs() return setmetatable({list = {}, [P.CRONS] = true}, CRONS_MT) end

-- Herald's own mutations, which actions write through ("@herald:...").
P.builtins = {
  schedule = herald.internalMutation{args = {at = v.number(), name = v.string(), args = v.any()},
    handler = function(ctx, a) return ctx.scheduler:runAt(a.at, a.name, a.args) end},
  cancel = herald.internalMutation{args = {id = v.string()},
    handler = function(ctx, a) ctx.scheduler:cancel(a.id) end},
  storageDelete = herald.internalMutation{args = {id = v.string()},
    handler = function(ctx, a) ctx.storage:delete(a.id) end},
}

-- A safe clock: os.time() and os.date() see the call's fixed time.
local real_date, real_clock = P.os_date, P.os_clock
os = {
  time = function(t)
    if t ~= nil then error("os.time takes no arguments here", 2) end
    return P.now_seconds()
  end,
  clock = real_clock,
  date = function(fmt, t) return real_date(fmt or "%c", t or P.now_seconds()) end,
}

return readonly(herald, "herald"), readonly(v, "v"), readonly(os, "os"), fetch
