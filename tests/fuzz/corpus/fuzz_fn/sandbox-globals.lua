-- What the sandbox leaves out: io, debug, package, dofile, loadfile, collectgarbage, string.dump, os.*.
local M = {}
M.globals = herald.query{handler = function()
  local names = {}
  for k in pairs(_G) do names[#names + 1] = tostring(k) end
  table.sort(names)
  return {missing = {io == nil, debug == nil, package == nil, dofile == nil, loadfile == nil,
                     collectgarbage == nil, string.dump == nil, ("").dump == nil,
                     os.execute == nil, os.getenv == nil, os.exit == nil, os.remove == nil, os.rename == nil,
                     os.tmpname == nil, os.setlocale == nil},
          names = names}
end}
M.tryEscape = herald.query{handler = function()
  local r = {}
  for _, f in ipairs({function() return io.open("/etc/passwd") end,
                      function() return debug.getregistry() end,
                      function() return package.loadlib("libc.so.6", "system") end,
                      function() return require("debug") end,
                      function() return string.dump(print) end,
                      function() return load(string.dump(function() end)) end,
                      function() return rawget(_G, "io") end,
                      function() return getmetatable(herald.null) end,
                      function() return os.time({year = 2000, month = 1, day = 1}) end,
                      function() return rawequal(herald.null, herald.unset) end,
                      function() return setmetatable(_G, {__index = function(t, k) return k end}) and undefinedThing end}) do
    local ok, e = pcall(f)
    r[#r + 1] = {ok, type(e)}
  end
  return r
end}
M.overwriteHelpers = herald.query{handler = function(ctx)
  local saved = herald.array
  herald.array = nil
  local ok = pcall(function()
    return ctx.db:query("tasks"):withIndex("by_owner", function(q) return q:eq("owner", "ada") end):collect() end)
  herald.array = saved
  local savedType = math.type
  math.type = function() return "integer" end
  local ok2, fake = pcall(herald.int64, "not a number")
  local ok3 = pcall(function() return ctx.db:insert("users", {n = fake}) end)
  math.type = savedType
  return {ok, ok2, ok3}
end}
return M
